"""A device's last Intune check-in, for remediation's at_risk decisions, from what devicemon
already holds: the `Snapshot` of its DeviceState row (the facts of its latest evaluation, with
its Intune records). No Graph read, so `off` and `dry-run` still never call Graph.

The stored check-in can only lag the real one (a check-in that changed nothing else may not have
been written yet): an error on that side costs at most one sync the device did not need, within
the hourly budget; it never withholds a sync the device did need.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shared.core.observations import Facts, ObservationError
from shared.core.snapshots import SnapshotError, managed_device_from_json

if TYPE_CHECKING:
    from shared.adapters.store import DeviceStore


class Checkins(Protocol):
    async def last_checkin(self, object_id: str, managed_device_id: str) -> datetime | None: ...


class StoredCheckins:
    def __init__(self, store: DeviceStore) -> None:
        self._store = store

    async def last_checkin(self, object_id: str, managed_device_id: str) -> datetime | None:
        """Intune's lastSyncDateTime of that managed device, or None when devicemon holds no
        snapshot with that record (a row written before snapshots, a record gone since)."""
        row = await self._store.get_state(object_id)
        if row is None or not row.snapshot:
            return None
        try:
            facts = Facts.from_json(row.snapshot)
            records = [managed_device_from_json(m) for m in facts.managed or ()]
        except (ObservationError, SnapshotError):
            return None
        found = [r.last_sync for r in records if r.managed_device_id == managed_device_id]
        return found[0] if found else None
