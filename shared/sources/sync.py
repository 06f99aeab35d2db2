"""Delta sync over /devices: the source of truth, and the detector where Graph sends no
notifications for devices.

Page by page: each page's changed and removed devices are queued on `device-changes` (one session
per device, like notifications), each with what the page said of it and when (an observation,
shared/core/observations.py), and only then is the next link saved, so a crash repeats a page
but never skips one. A baseline (first run, or a full resync after an expired token) first reads
Intune's managed devices in one paged list and joins them to the delta's devices by device id
(shared/sources/intune.py), so a baseline costs a request per page, not per device. Memory holds
one delta page at a time, however large the tenant, plus that index. A lease on the cursor row
keeps two runs (timer, lifecycle `missed`, an operator) from interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from kiota_abstractions.api_error import APIError

from shared import logs
from shared.adapters.bookkeeping import Bookkeeping, LeaseLost, SyncState
from shared.adapters.graph import (
    DEVICE_SELECT,
    GraphJson,
    error_codes,
    error_text,
    managed_device_pages,
)
from shared.core.changes import DeviceChange, normalize_graph_id
from shared.core.models import Source, utc_now
from shared.core.observations import Facts, merge_items
from shared.sources.intune import IntuneIndex

log = logging.getLogger("devicemon.sync")
DELTA_PATH = f"/devices/delta?$select={','.join(DEVICE_SELECT)}"
# Graph answers an expired or unknown delta token with one of these, at the top or nested in
# `innererror` (concepts/errors.md: resyncRequired "the delta token is no longer valid, and the
# app must reset the sync state"; syncStateNotFound "the delta token is expired"; the detailed
# resync codes ask for the same). Matched case-insensitively.
EXPIRED_TOKEN_CODES = frozenset(
    {
        "syncstatenotfound",
        "resyncrequired",
        "syncstateinvalid",
        "resyncapplydifferences",
        "resyncuploaddifferences",
    }
)
# Short, and renewed while the run is alive: a run whose process died stops renewing, and the
# next run may take over within a minute instead of waiting out a long lease.
LEASE = timedelta(seconds=60)


class _Lease:
    """The run's view of its DevicemonSync row: every write goes through here, one at a time,
    so the page loop and the heartbeat never race each other's ETag."""

    def __init__(
        self, books: Bookkeeping, state: SyncState, clock: Callable[[], datetime], length: timedelta
    ) -> None:
        self._books = books
        self.state = state
        self._clock = clock
        self.length = length
        self._writing = asyncio.Lock()

    async def save(self, **changes: Any) -> SyncState:
        async with self._writing:
            self.state = await self._books.save_sync(replace(self.state, **changes))
            return self.state

    async def renew_forever(self) -> None:
        """Push the lease forward every third of its length until cancelled. A failed renewal
        (storage hiccup) is retried at the next beat; LeaseLost ends the beats, and the run
        finds out at its next write."""
        while True:
            await asyncio.sleep(self.length.total_seconds() / 3)
            try:
                await self.save(lease_until=self._clock() + self.length)
            except LeaseLost:
                return
            except Exception as exc:  # the run itself notices a lasting storage failure
                logs.event(
                    log, "sync_lease_renew_failed", level=logging.WARNING, error=type(exc).__name__
                )


class ChangeSink(Protocol):
    async def send(self, changes: Iterable[DeviceChange]) -> int: ...


@dataclass(frozen=True, slots=True)
class SyncResult:
    outcome: str  # completed, busy, failed
    phase: str = ""
    pages: int = 0
    changes: int = 0
    seconds: float = 0.0
    full_resync: bool = False
    error: str = ""


def token_expired(exc: APIError) -> bool:
    """410 Gone, or any code of the answer, nested ones included, that asks for a resync."""
    return exc.response_status_code == 410 or any(
        code.lower() in EXPIRED_TOKEN_CODES for code in error_codes(exc)
    )


def page_changes(
    page: dict[str, Any],
    run_id: str,
    page_number: int,
    observed_at: datetime,
    intune: IntuneIndex | None = None,
) -> list[DeviceChange]:
    """The page's devices as changes, each device once, with what the page said of it.

    Graph may list one object twice in a page, an update item holding only the properties that
    changed: the page's items for a device are merged, later properties winning. The same device
    on another page of the round is another change with another message id (the page number is
    in it): one id for both would let the queue's duplicate detection drop the later one. The
    sync sends pages in order, so within the device's session the later observation comes last.
    Ids are normalised before they key anything: one device spelt in two cases is one device,
    and its message id does not depend on the spelling."""
    merged: dict[str, dict[str, Any]] = {}
    for item in page.get("value") or []:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"].strip():
            object_id = normalize_graph_id(item["id"])
            merged[object_id] = merge_items(merged.get(object_id), {**item, "id": object_id})
    received_at = observed_at.isoformat()
    changes = []
    for object_id, item in merged.items():
        removed = "@removed" in item
        message_id = hashlib.sha256(
            f"sync|{run_id}|{page_number}|{object_id}".encode()
        ).hexdigest()[:32]
        facts = Facts(observed_at, item)
        records = intune.records_for(item) if intune is not None and not removed else None
        if intune is not None and records is not None:
            facts = Facts(observed_at, item, records, intune.read_at)
        changes.append(
            DeviceChange(
                device_id=object_id,
                change_type="deleted" if removed else "updated",
                source=Source.SYNC,
                message_id=message_id,
                correlation_id=message_id,
                received_at=received_at,
                # Far larger than any real device: sent as a bare hint, the processor re-reads.
                facts=facts if facts.fits_a_message() else None,
            )
        )
    return changes


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class DeltaSync:
    def __init__(
        self,
        *,
        graph: GraphJson,
        books: Bookkeeping,
        sink: ChangeSink,
        page_size: int | None = None,
        clock: Callable[[], datetime] = utc_now,
        owner: str | None = None,
        on_page: Callable[[int, int], None] | None = None,
        lease: timedelta = LEASE,
        intune_enabled: bool = True,
    ) -> None:
        self._graph = graph
        self._books = books
        self._sink = sink
        self._headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else None
        self._clock = clock
        self._owner = owner or default_owner()
        self._on_page = on_page
        self._lease_length = lease
        self._intune_enabled = intune_enabled

    async def run(self, reason: str) -> SyncResult:
        started = time.perf_counter()
        run_id = uuid.uuid4().hex
        state = await self._books.acquire_sync(
            self._owner, run_id, self._clock(), self._lease_length
        )
        if state is None:
            logs.event(log, "sync_skipped", reason=reason, outcome="already_running")
            return SyncResult("busy")
        lease = _Lease(self._books, state, self._clock, self._lease_length)
        heartbeat = asyncio.create_task(lease.renew_forever())
        try:
            return await self._run(reason, run_id, lease, started)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _run(self, reason: str, run_id: str, lease: _Lease, started: float) -> SyncResult:
        state = lease.state
        phase = state.phase if state.link else "baseline"
        url = state.link or DELTA_PATH
        pages = changes = 0
        full_resync = False
        intune: IntuneIndex | None = None
        logs.event(
            log,
            "sync_started",
            reason=reason,
            phase=phase,
            run_id=run_id,
            resumed=bool(
                state.link and state.phase == "baseline" and state.last_success_at is None
            ),
        )
        try:
            while True:
                if phase == "baseline" and intune is None and self._intune_enabled:
                    intune = await self._read_intune()
                observed_at = self._clock()
                try:
                    page = await self._graph.get(url, headers=self._headers)
                except APIError as exc:
                    if not token_expired(exc) or full_resync:
                        raise
                    # The token outlived Graph's 7 days (or was lost): start a new baseline.
                    # The processor's fingerprints turn the re-sent devices into no-ops.
                    logs.event(
                        log, "sync_token_expired", level=logging.WARNING, error=error_text(exc)
                    )
                    full_resync, phase, url = True, "baseline", DELTA_PATH
                    state = replace(state, full_resyncs=state.full_resyncs + 1)
                    continue
                batch = page_changes(
                    page or {}, run_id, pages, observed_at, intune if phase == "baseline" else None
                )
                if batch:
                    await self._sink.send(batch)
                pages += 1
                changes += len(batch)
                if self._on_page:
                    self._on_page(pages, changes)
                next_link = (page or {}).get("@odata.nextLink")
                if next_link:
                    state = await lease.save(
                        link=next_link,
                        phase=phase,
                        full_resyncs=state.full_resyncs,
                        lease_until=self._clock() + self._lease_length,
                    )
                    url = next_link
                    continue
                delta_link = (page or {}).get("@odata.deltaLink")
                if not delta_link:
                    raise ValueError(
                        "a delta page with neither @odata.nextLink nor @odata.deltaLink"
                    )
                seconds = time.perf_counter() - started
                await lease.save(
                    link=delta_link,
                    phase="incremental",
                    full_resyncs=state.full_resyncs,
                    last_success_at=self._clock(),
                    last_run_pages=pages,
                    last_run_changes=changes,
                    last_run_seconds=round(seconds, 3),
                    last_error="",
                    lease_owner="",
                    lease_until=None,
                )
                logs.event(
                    log,
                    "sync_completed",
                    reason=reason,
                    phase=phase,
                    pages=pages,
                    changes=changes,
                    full_resync=full_resync,
                    duration_ms=round(seconds * 1000, 1),
                )
                return SyncResult("completed", phase, pages, changes, seconds, full_resync)
        except LeaseLost:
            logs.event(
                log,
                "sync_failed",
                level=logging.WARNING,
                reason=reason,
                error="lease lost to another run",
            )
            return SyncResult(
                "failed",
                phase,
                pages,
                changes,
                time.perf_counter() - started,
                full_resync,
                "lease lost",
            )
        except Exception as exc:
            text = error_text(exc)
            logs.event(
                log, "sync_failed", level=logging.ERROR, reason=reason, pages=pages, error=text
            )
            await self._record_failure(lease, text)
            return SyncResult(
                "failed", phase, pages, changes, time.perf_counter() - started, full_resync, text
            )

    async def _read_intune(self) -> IntuneIndex:
        started = time.perf_counter()
        index = await IntuneIndex.read(managed_device_pages(self._graph), self._clock())
        logs.event(
            log,
            "intune_list_read",
            managed_devices=index.records,
            devices=len(index),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return index

    async def _record_failure(self, lease: _Lease, text: str) -> None:
        # Keep the cursor where it is (the next run resumes there) and release the lease.
        try:
            await lease.save(
                last_error=text,
                last_error_at=self._clock(),
                lease_owner="",
                lease_until=None,
            )
        except Exception as exc:
            logs.event(log, "sync_record_failed", level=logging.WARNING, error=type(exc).__name__)
