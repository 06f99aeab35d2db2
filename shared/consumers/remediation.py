"""Opt-in remediation for lost and at_risk alerts: ask Intune to sync a device whose compliance
(or an old check-in) is the problem, at most once per alert and within one hourly budget.

`plan` (shared/consumers/remediation_plan.py) is pure: what an alert deserves under a mode. `Remediator` runs the crash-safe state
machine over the RemediationLog row of the alert (shared/consumers/remediation_log.py):

    (no row) ─create─► claimed ─budget─► acting ─Graph ok─► acted
                 │          └─no budget─► rate_limited      ├─4xx (not 429)─► failed
                 │                                          ├─not sent (429, no connection)─► retry
                 │                                          │      └─(redelivery)─► acting
                 │                                          └─may have acted (5xx, timeout)─► interrupted
                 └─ skipped | dry_run (final at once)
    redelivery finding `acting` ─► interrupted (never a second action)

The row is created (insert-if-absent, keyed by the alert) before anything is done, so a
redelivered alert finds it and never acts twice. A crash after the Graph call but before
`acted` is recorded leaves `acting`: the redelivery records `interrupted` instead of syncing again
(at most one action per alert; docs/remediation.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from shared import logs
from shared.consumers.remediation_plan import (
    FINAL,
    Mode,
    Outcome,
    hour_bucket,
    plan,
    wants_checkin,
)
from shared.core.alert_view import AlertView

if TYPE_CHECKING:
    from shared.adapters.graph import GraphJson
    from shared.consumers.checkins import Checkins
    from shared.consumers.remediation_log import LogEntry, RemediationLog

log = logging.getLogger("devicemon.remediation")


class DeviceSync(Protocol):
    async def sync_device(self, managed_device_id: str) -> None: ...


class PermanentGraphError(Exception):
    """Graph refused the action (4xx other than 429): retrying will not help."""


class NotSent(Exception):
    """Graph certainly did not act (throttled with 429 past our retries, or no connection):
    calling again cannot make a second action."""


def _never_reached_graph(exc: BaseException) -> bool:
    import httpx
    from kiota_abstractions.api_error import APIError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, APIError) and seen.response_status_code == 429:
            return True
        if isinstance(seen, httpx.ConnectError | httpx.ConnectTimeout):
            return True
        seen = seen.__cause__
    return False


class GraphDeviceSync:
    """`POST /deviceManagement/managedDevices/{id}/syncDevice` through the runtime's Graph client.

    Needs DeviceManagementManagedDevices.PrivilegedOperations.All. GraphJson retries a POST only
    on 429 (Graph has not acted); other failures are classified here for the state machine.
    """

    def __init__(self, graph: Callable[[], GraphJson]) -> None:
        self._graph = graph  # built on first use: off and dry-run never load msgraph

    async def sync_device(self, managed_device_id: str) -> None:
        from kiota_abstractions.api_error import APIError
        from kiota_abstractions.method import Method

        from shared.adapters.graph import error_text

        path = f"/deviceManagement/managedDevices/{quote(managed_device_id, safe='')}/syncDevice"
        try:
            await self._graph().request(Method.POST, path)
        except APIError as exc:
            status = exc.response_status_code or 0
            if 400 <= status < 500 and status != 429:
                raise PermanentGraphError(error_text(exc)) from exc
            if status == 429:
                raise NotSent(error_text(exc)) from exc
            raise
        except Exception as exc:
            if _never_reached_graph(exc):
                raise NotSent(f"{type(exc).__name__}: {exc}") from exc
            raise


class Remediator:
    def __init__(
        self,
        log_table: RemediationLog,
        graph: DeviceSync,
        *,
        mode: Mode,
        max_actions_per_hour: int,
        checkins: Checkins | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._log = log_table
        self._graph = graph
        self._mode = mode
        self._limit = max_actions_per_hour
        self._checkins = checkins  # None: at_risk alerts are never synced (no check-in known)
        self._clock = clock

    @property
    def log(self) -> RemediationLog:
        return self._log

    async def history(self, device_id: str) -> list[LogEntry]:
        """The device's remediation decisions, newest first."""
        return await self._log.history(device_id)

    async def handle(self, alert: AlertView, delivery_count: int = 0) -> LogEntry:
        from shared.consumers.remediation_log import LogConflict, LogEntry

        now = self._clock()
        last_checkin = None
        if self._checkins is not None and alert.managed_device_id and wants_checkin(alert):
            last_checkin = await self._checkins.last_checkin(
                alert.object_id, alert.managed_device_id
            )
        decided = plan(alert, self._mode, last_checkin, now)
        fresh = LogEntry.decided(alert, self._mode, decided, now)
        entry, created = await self._log.create(fresh)
        if not created and entry.outcome in FINAL:
            self._event("remediation_duplicate", alert, entry, delivery_count)
            return entry
        if not created and entry.outcome is Outcome.ACTING:
            # A previous attempt stopped after deciding to act: the sync may have been sent.
            entry = await self._log.update(
                replace(
                    entry,
                    outcome=Outcome.INTERRUPTED,
                    reason="a previous attempt stopped after sending syncDevice (or just "
                    "before); not repeated: one action per alert",
                )
            )
            self._event("remediation_decided", alert, entry, delivery_count, logging.WARNING)
            return entry
        if entry.outcome not in (Outcome.CLAIMED, Outcome.RETRY):
            self._event("remediation_decided", alert, entry, delivery_count)
            return entry
        try:
            return await self._act(alert, entry, delivery_count)
        except LogConflict:
            # Another delivery of the same alert moved the row first (its lock expired while
            # this one ran): that one owns the action.
            current = await self._log.get(entry.device_id, entry.row_key)
            assert current is not None
            self._event("remediation_duplicate", alert, current, delivery_count)
            return current

    async def _act(self, alert: AlertView, entry: LogEntry, delivery_count: int) -> LogEntry:
        if entry.outcome is Outcome.CLAIMED:
            hour = hour_bucket(self._clock())
            if not await self._log.reserve_slot(hour, self._limit):
                entry = await self._log.update(
                    replace(
                        entry,
                        outcome=Outcome.RATE_LIMITED,
                        reason=f"REMEDIATION_MAX_ACTIONS_PER_HOUR ({self._limit}) reached for "
                        f"hour {hour} UTC; not synced",
                    )
                )
                self._event("remediation_decided", alert, entry, delivery_count, logging.WARNING)
                return entry
            entry = replace(entry, slot_hour=hour)
        entry = await self._log.update(
            replace(entry, outcome=Outcome.ACTING, attempts=entry.attempts + 1)
        )
        assert entry.managed_device_id is not None
        try:
            await self._graph.sync_device(entry.managed_device_id)
        except PermanentGraphError as exc:
            entry = await self._log.update(replace(entry, outcome=Outcome.FAILED, error=str(exc)))
            self._event("remediation_decided", alert, entry, delivery_count, logging.ERROR)
            return entry
        except NotSent as exc:
            # Graph did not act: the redelivery calls again, on the budget slot already taken.
            error = str(exc)[:1000]
            await self._log.update(replace(entry, outcome=Outcome.RETRY, error=error))
            logs.event(
                log,
                "remediation_retry",
                level=logging.WARNING,
                alert_id=alert.id,
                device_id=alert.object_id,
                delivery_count=delivery_count,
                error=error,
            )
            raise
        except Exception as exc:
            # 5xx, timeouts, dropped connections: Graph may have acted. Never call twice.
            error = f"{type(exc).__name__}: {exc}"[:1000]
            entry = await self._log.update(
                replace(
                    entry,
                    outcome=Outcome.INTERRUPTED,
                    error=error,
                    reason="syncDevice outcome unknown (Graph may have acted); not repeated: "
                    "one action per alert",
                )
            )
            self._event("remediation_decided", alert, entry, delivery_count, logging.WARNING)
            return entry
        entry = await self._log.update(
            replace(entry, outcome=Outcome.ACTED, acted_at=self._clock(), error=""),
            force=True,
        )
        self._event("remediation_decided", alert, entry, delivery_count)
        return entry

    def _event(
        self,
        name: str,
        alert: AlertView,
        entry: LogEntry,
        delivery_count: int,
        level: int = logging.INFO,
    ) -> None:
        logs.event(
            log,
            name,
            level=level,
            alert_id=alert.id,
            device_id=alert.object_id,
            mode=entry.mode,
            outcome=entry.outcome.value,
            code=entry.code,
            reason=entry.reason,
            error=entry.error or None,
            delivery_count=delivery_count,
        )
