"""The Intune watch: what moved in Intune without touching the Entra device.

A device entering its grace period stays `isCompliant: true` in Entra (memdocs
actions-for-noncompliance.md), a device that stops checking in changes nothing in Entra until its
validity period is over, and a co-managed device can change agent: no `/devices` change, so neither
notifications nor the delta sync see them. Every INTUNE_WATCH_SCHEDULE (15 minutes) the watch
reads the managed-devices list in bulk (shared/sources/intune.py: one paged `$select` list, a
request per 1,000 managed devices, the newest record per Entra device) and compares each device's
watched facts with what the last run saw (shared/adapters/intune_digests.py):

- `complianceState`, `complianceGracePeriodExpirationDateTime`, `managementAgent`, the
  co-management compliance workload, the managed device id (re-enrolment);
- `lastSyncDateTime` as a band, not an instant (it moves at every ~8-hour check-in): fresh,
  past the tenant's warning point (shared/core/tenant_settings.checkin_overdue), past its
  compliance status validity period.

A device whose digest moved is queued as a DeviceChange (Source.INTUNE_WATCH) carrying an
observation: `{"id", "deviceId"}` of the Entra device and the Intune record just read. The
processor merges it onto the stored snapshot (observations.plan: a partial device on the last
full one; with_held_intune: the newer Intune records win) and evaluates without a Graph read; a
bare hint would cost two (the device and its Intune records) per changed device. It re-reads only
when it holds no full snapshot of the device.

The first run (no digests yet) records and queues nothing: the delta sync's baseline already
evaluated every device with its Intune records. The Entra object id a change must name is not in
the Intune record; it is looked up once per device, 20 to a `$batch`, and kept with the digest.
Digests are saved only after the queue took the changes; a failed lookup leaves the device's old
digest, so the next run tries again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from kiota_abstractions.method import Method

from shared import logs
from shared.adapters.graph import GraphJson, managed_device_pages
from shared.adapters.intune_digests import (
    DIGEST_BYTES,
    IDENTITY_BYTES,
    DigestBook,
    Digests,
    Held,
    device_key,
)
from shared.core.changes import DeviceChange, normalize_graph_id
from shared.core.models import Source
from shared.core.observations import Facts
from shared.core.snapshots import SnapshotError, parse_time
from shared.core.tenant_settings import TenantSettings, checkin_warning_lead
from shared.sources.intune import IntuneIndex

log = logging.getLogger("devicemon.intune_watch")
NIL_DEVICE_ID = "00000000-0000-0000-0000-000000000000"  # Intune's "not linked to Entra"
BATCH_ITEMS = 20  # json-batching.md: at most 20 requests in one $batch

# Check-in bands.
FRESH, OVERDUE, LAPSED = 0, 1, 2


class ChangeSink(Protocol):
    async def send(self, changes: Iterable[DeviceChange]) -> int: ...


@dataclass(frozen=True, slots=True)
class Bands:
    """A run's check-in cutoffs, computed once: a check-in at or before `lapsed_by` is past the
    validity period (now >= last + period), at or before `overdue_by` past the warning point
    (shared/core/tenant_settings.checkin_overdue: now >= last + period - lead)."""

    lapsed_by: datetime
    overdue_by: datetime

    @classmethod
    def at(cls, now: datetime, tenant: TenantSettings, warning_days: int) -> Bands:
        lead = checkin_warning_lead(tenant.checkin_threshold_days, warning_days)
        return cls(now - tenant.validity_period, now - tenant.validity_period + lead)

    def of(self, last_sync: datetime | None) -> int:
        if last_sync is None:
            return FRESH
        if last_sync <= self.lapsed_by:
            return LAPSED
        return OVERDUE if last_sync <= self.overdue_by else FRESH


def checkin_band(
    last_sync: datetime | None, now: datetime, tenant: TenantSettings, warning_days: int
) -> int:
    """Where the device's last check-in stands against the tenant's validity period."""
    return Bands.at(now, tenant, warning_days).of(last_sync)


def _time(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            # Graph's usual "2026-12-01T04:00:00Z": the fast path; anything else goes the long way.
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None:
                return parsed
        except ValueError:
            pass  # not ISO 8601 as Python reads it: parse_time below decides, and says why
    try:
        return parse_time(value)
    except SnapshotError:
        return None


@functools.lru_cache(maxsize=4096)
def _instant_text(value: str) -> str:
    """An instant as one text whatever the offset it was written with; the raw text otherwise.
    Cached: most devices share one value (Intune's "no grace period", 9999-12-31)."""
    parsed = _time(value)
    return value if parsed is None else parsed.astimezone(UTC).isoformat()


def watched_facts(record: Mapping[str, Any], bands: Bands) -> tuple[str, ...]:
    features = record.get("configurationManagerClientEnabledFeatures")
    workload = features.get("compliancePolicy") if isinstance(features, Mapping) else None
    return (
        str(record.get("id") or ""),
        str(record.get("complianceState") or "").lower(),
        _instant_text(str(record.get("complianceGracePeriodExpirationDateTime") or "")),
        str(record.get("managementAgent") or "").lower(),
        str(workload),
        str(bands.of(_time(record.get("lastSyncDateTime")))),
    )


def digest(facts: Sequence[str]) -> bytes:
    return hashlib.blake2b("\x1f".join(facts).encode(), digest_size=DIGEST_BYTES).digest()


def identity(managed_id: str) -> bytes:
    return hashlib.blake2b(managed_id.encode(), digest_size=IDENTITY_BYTES).digest()


def watch_change(
    object_id: str,
    device_id: str,
    record: Mapping[str, Any],
    before: bytes,
    after: bytes,
    read_at: datetime,
    now: datetime,
) -> DeviceChange:
    """The change for a device whose Intune facts moved: an observation of its Intune record onto
    the Entra device the processor has stored. The
    message id derives from the move (device, digest before, digest after): a run that queued it
    and failed before saving digests queues it again under the same id, and the queue's duplicate
    detection drops the copy."""
    object_id = normalize_graph_id(object_id)
    message_id = hashlib.sha256(
        f"intune_watch|{object_id}|{before.hex()}|{after.hex()}".encode()
    ).hexdigest()[:32]
    facts = Facts(
        observed_at=read_at,
        device={"id": object_id, "deviceId": device_id},
        managed=(dict(record),),
        managed_at=read_at,
    )
    return DeviceChange(
        device_id=object_id,
        change_type="updated",
        source=Source.INTUNE_WATCH,
        message_id=message_id,
        correlation_id=message_id,
        received_at=now.isoformat(),
        facts=facts,
    )


async def resolve_object_ids(graph: GraphJson, device_ids: Sequence[str]) -> dict[str, str | None]:
    """Entra object ids by device id, 20 lookups to a `$batch` (the alternate key
    `devices(deviceId='...')`, api-reference device-get.md). None: Graph has no such device (404).
    A device left out could not be looked up (throttled, failed): try again next run."""
    found: dict[str, str | None] = {}
    for start in range(0, len(device_ids), BATCH_ITEMS):
        chunk = device_ids[start : start + BATCH_ITEMS]
        requests = [
            {
                "id": str(i),
                "method": "GET",
                "url": f"/devices(deviceId='{quote(d.replace(chr(39), chr(39) * 2), safe='')}')"
                "?$select=id",
            }
            for i, d in enumerate(chunk)
        ]
        answer = await graph.request(Method.POST, "/$batch", {"requests": requests})
        for response in (answer or {}).get("responses", []):
            try:
                device_id = chunk[int(response.get("id"))]
            except (TypeError, ValueError, IndexError):
                continue
            status = response.get("status")
            body = response.get("body")
            if status == 200 and isinstance(body, dict) and isinstance(body.get("id"), str):
                found[device_id] = body["id"].strip().lower()
            elif status == 404:
                found[device_id] = None
    return found


@dataclass(frozen=True, slots=True)
class Move:
    """A device whose watched facts differ from the last run's."""

    key: bytes
    device_id: str
    record: dict[str, Any]
    held: Held | None  # what the last run saw; None: a device it did not hold
    after: bytes

    @property
    def cached_object_id(self) -> str | None:
        """The Entra object id kept from an earlier lookup, unless the device re-enrolled (another
        managed device id: it may be another Entra object with the same device id)."""
        if self.held is None or self.held.identity != identity(str(self.record.get("id") or "")):
            return None
        return self.held.object_id


@dataclass(frozen=True, slots=True)
class WatchResult:
    outcome: str  # completed, baseline (first run: recorded only), off (Intune switched off)
    devices: int = 0  # Entra devices with an Intune record
    changed: int = 0  # whose watched facts moved
    queued: int = 0
    unresolved: int = 0  # changed, but the object id could not be looked up: next run
    not_in_entra: int = 0  # changed, but Graph has no Entra device for the device id
    graph_requests: int = 0
    table_requests: int = 0
    rows_written: int = 0
    rows_refused: int = 0
    seconds: float = 0.0


class IntuneWatch:
    def __init__(
        self,
        *,
        graph: GraphJson,
        book: DigestBook,
        sink: ChangeSink,
        tenant: Callable[[], Awaitable[TenantSettings]],
        warning_days: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._graph = graph
        self._book = book
        self._sink = sink
        self._tenant = tenant
        self._warning_days = warning_days
        self._clock = clock
        self._started = 0.0

    async def _pages(self, counter: list[int]) -> Any:
        async for page in managed_device_pages(self._graph):
            counter[0] += 1
            yield page

    async def run(self) -> WatchResult:
        self._started = time.perf_counter()
        now = self._clock()
        tenant = await self._tenant()
        digests = await self._book.load()
        pages = [0]
        index = await IntuneIndex.read(self._pages(pages), now)
        first = len(digests) == 0
        moved, seen = self._compare(index, digests, tenant, now)
        # A device Intune no longer holds is forgotten, not queued: unenrolling (retire, wipe,
        # delete) also changes the Entra device (isManaged, mdmAppId), which the delta reports.
        for key in [k for k in digests.device_keys() if k not in seen]:
            digests.drop(key)
        if first:
            for move in moved:
                self._remember(digests, move, None)
            return await self._finish(WatchResult("baseline", len(seen)), digests, pages[0], 0)
        wanted = [m.device_id for m in moved if m.cached_object_id is None]
        resolved = await resolve_object_ids(self._graph, wanted) if wanted else {}
        changes: list[DeviceChange] = []
        unresolved = gone = 0
        for move in moved:
            object_id = move.cached_object_id
            if object_id is None:
                if move.device_id not in resolved:
                    unresolved += 1
                    continue  # its old digest stays: the next run tries again
                object_id = resolved[move.device_id]
            if object_id is None:
                gone += 1  # Graph has no Entra device with this id: nothing to evaluate
            else:
                changes.append(
                    watch_change(
                        object_id,
                        move.device_id,
                        move.record,
                        move.held.digest if move.held else b"",
                        move.after,
                        index.read_at,
                        now,
                    )
                )
            self._remember(digests, move, object_id)
        queued = await self._sink.send(changes) if changes else 0
        result = WatchResult("completed", len(seen), len(moved), queued, unresolved, gone)
        return await self._finish(result, digests, pages[0], -(-len(wanted) // BATCH_ITEMS))

    async def _finish(
        self, result: WatchResult, digests: Digests, pages: int, batches: int
    ) -> WatchResult:
        """Save the digests (after the queue took the changes) and the run's figures."""
        written, refused = await self._book.save(digests)
        result = replace(
            result,
            graph_requests=pages + batches,
            # + the run row written below
            table_requests=sum(self._book.requests.values()) + 1,
            rows_written=written,
            rows_refused=refused,
            seconds=round(time.perf_counter() - self._started, 3),
        )
        await self._book.record_run(self._clock(), _figures(result))
        return result

    def _compare(
        self, index: IntuneIndex, digests: Digests, tenant: TenantSettings, now: datetime
    ) -> tuple[list[Move], set[bytes]]:
        moved: list[Move] = []
        seen: set[bytes] = set()
        bands = Bands.at(now, tenant, self._warning_days)
        for device_id, record in index.items():
            key = device_key(device_id)
            if key is None or device_id == NIL_DEVICE_ID:
                continue  # not linked to an Entra device
            seen.add(key)
            after = digest(watched_facts(record, bands))
            held = digests.get(key)
            if held is None or held.digest != after:
                moved.append(Move(key, device_id, record, held, after))
        return moved, seen

    @staticmethod
    def _remember(digests: Digests, move: Move, object_id: str | None) -> None:
        managed = identity(str(move.record.get("id") or ""))
        digests.put(move.key, Held(move.after, managed, object_id))


def _figures(result: WatchResult) -> dict[str, int | float | str]:
    """The run's figures as the run row's columns (CamelCase)."""
    return {
        "".join(part.title() for part in name.split("_")): value
        for name, value in asdict(result).items()
    }


def log_result(result: WatchResult) -> None:
    level = logging.WARNING if result.unresolved or result.rows_refused else logging.INFO
    logs.event(log, "intune_watch_run", level=level, **asdict(result))
