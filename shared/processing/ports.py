"""What the pipeline needs from the outside world: Graph, the tables, the topic, the outbox index,
the deadline scheduler. Protocols only, implemented in shared/adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from shared.core.compliance_details import ComplianceDetails
from shared.core.observations import Facts
from shared.core.records import HistoryRow, StateRow


class DeviceReader(Protocol):
    device_properties: tuple[str, ...]
    intune_enabled: bool

    async def read(
        self,
        object_id: str,
        at: datetime,
        known: Mapping[str, Any] | None = None,
        *,
        gone_expected: bool = False,
    ) -> Facts: ...

    async def managed_for(
        self, device: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], ...] | None: ...


class StateStore(Protocol):
    async def get_state(self, object_id: str) -> StateRow | None: ...
    def history(self, object_id: str, limit: int | None = None) -> AsyncIterator[HistoryRow]: ...
    async def page_states(
        self,
        query: str | None,
        parameters: dict[str, Any],
        *,
        top: int,
        resume: dict[str, Any] | None = None,
        accept: Callable[[StateRow], bool] | None = None,
        max_scan: int = 5000,
    ) -> tuple[list[StateRow], dict[str, Any] | None]: ...
    async def write_history(self, row: HistoryRow) -> None: ...
    async def commit_state(self, row: StateRow) -> StateRow: ...


class DeadlineScheduler(Protocol):
    """Re-evaluates a device at `due` (shared/adapters/deadlines.py): moves its entry from
    `previous_due`, or removes it when `due` is None. Called again with the same arguments after a
    crash, so it must be idempotent."""

    async def schedule(
        self, object_id: str, due: datetime | None, previous_due: datetime | None
    ) -> None: ...


class Publisher(Protocol):
    async def publish(self, alert: dict[str, Any]) -> None: ...


# Reads one Intune managed device's failing compliance policies and settings; never raises for
# Graph's sake (shared.adapters.compliance_details.read_compliance_details).
ComplianceReader = Callable[[str], Awaitable[ComplianceDetails]]


class Outbox(Protocol):
    async def hold(self, object_id: str, alert_id: str, alert_type: str, at: datetime) -> None: ...
    async def release(self, object_id: str, alert_id: str) -> None: ...
