"""Delta sync over /devices: the source of truth that catches what notifications miss.

Page by page: each page's changed and removed devices are queued on `device-changes` (one session
per device, like notifications) and only then is the next link saved, so a crash repeats a page
but never skips one. Memory holds one page at a time, however large the tenant. A lease on the
cursor row keeps two runs (timer, lifecycle `missed`, an operator) from interleaving.
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
from shared.adapters.graph import DEVICE_SELECT, GraphJson, error_code, error_text
from shared.core.changes import DeviceChange, normalize_graph_id
from shared.core.models import Source, utc_now

log = logging.getLogger("devicemon.sync")
DELTA_PATH = f"/devices/delta?$select={','.join(DEVICE_SELECT)}"
# Graph answers an expired or unknown directory delta token with one of these (FACTS.md).
EXPIRED_TOKEN_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
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
    return exc.response_status_code == 410 or error_code(exc).lower() in EXPIRED_TOKEN_CODES


def page_changes(page: dict[str, Any], run_id: str, received_at: str) -> list[DeviceChange]:
    """The page's devices as changes, each device once (Graph may repeat an object).

    Ids are normalised before they key anything: one device spelt in two cases is one device,
    and its message id (the queue's duplicate detection) does not depend on the spelling."""
    latest: dict[str, dict[str, Any]] = {}
    for item in page.get("value") or []:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"].strip():
            latest[normalize_graph_id(item["id"])] = item
    changes = []
    for object_id, item in latest.items():
        message_id = hashlib.sha256(f"sync|{run_id}|{object_id}".encode()).hexdigest()[:32]
        changes.append(
            DeviceChange(
                device_id=object_id,
                change_type="deleted" if "@removed" in item else "updated",
                source=Source.SYNC,
                message_id=message_id,
                correlation_id=message_id,
                received_at=received_at,
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
    ) -> None:
        self._graph = graph
        self._books = books
        self._sink = sink
        self._headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else None
        self._clock = clock
        self._owner = owner or default_owner()
        self._on_page = on_page
        self._lease_length = lease

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
                batch = page_changes(page or {}, run_id, self._clock().isoformat())
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
