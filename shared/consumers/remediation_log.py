"""`{TABLE_PREFIX}RemediationLog`: every remediation decision, and the hourly action budget.

- Decision rows: PartitionKey = device object id (a device's remediation history is one
  partition read, next to its DeviceState/DeviceHistory partitions), RowKey =
  `{inverted alert time}-{alert id}` (newest first; deterministic, so a redelivered alert maps
  to the same row and `create` is the once-per-alert guard). Every update is ETag-guarded.
- Budget rows: PartitionKey `ratelimit`, RowKey = UTC hour (`yyyymmddHH`), `Count` incremented
  under its ETag: concurrent consumers can never exceed the limit together.
Columns are documented in docs/tables.md.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.table_adapter import TableAdapter
from shared.consumers.remediation_plan import Mode, Outcome, Plan
from shared.core.alert_view import AlertView

RATE_LIMIT_PARTITION = "ratelimit"
_MAX_MS = 10**13 - 1
_CONFLICT_RETRIES = 100


class LogConflict(Exception):
    """Someone else updated the decision row since we read it (a concurrent redelivery)."""


def row_key(alert: AlertView) -> str:
    millis = int(alert.time.timestamp() * 1000)
    return f"{_MAX_MS - millis:013d}-{alert.id}"


@dataclass(frozen=True, slots=True)
class LogEntry:
    device_id: str
    row_key: str
    alert_id: str
    alert_type: str
    reasons: str
    device_name: str
    managed_device_id: str | None
    mode: str
    code: str
    outcome: Outcome
    reason: str
    decided_at: datetime
    acted_at: datetime | None = None
    slot_hour: str = ""
    attempts: int = 0
    error: str = ""
    etag: str | None = None

    @classmethod
    def decided(cls, alert: AlertView, mode: Mode, plan: Plan, now: datetime) -> LogEntry:
        return cls(
            device_id=alert.object_id,
            row_key=row_key(alert),
            alert_id=alert.id,
            alert_type=alert.type,
            reasons=",".join(alert.risk_reasons if alert.about_risk else alert.reasons),
            device_name=alert.name[:256],
            managed_device_id=alert.managed_device_id,
            mode=mode.value,
            code=str(plan.code),
            outcome=plan.outcome,
            reason=plan.reason,
            decided_at=now,
        )

    def entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.device_id,
            "RowKey": self.row_key,
            "AlertId": self.alert_id,
            "AlertType": self.alert_type,
            "Reasons": self.reasons,
            "DeviceName": self.device_name,
            "ManagedDeviceId": self.managed_device_id,
            "Mode": self.mode,
            "Action": self.code,
            "Outcome": self.outcome.value,
            "Reason": self.reason,
            "DecidedAt": self.decided_at,
            "ActedAt": self.acted_at,
            "SlotHour": self.slot_hour,
            "Attempts": self.attempts,
            "Error": self.error,
        }

    @classmethod
    def from_entity(cls, row: Any) -> LogEntry:
        metadata = getattr(row, "metadata", {}) or {}
        return cls(
            device_id=row["PartitionKey"],
            row_key=row["RowKey"],
            alert_id=str(row.get("AlertId") or ""),
            alert_type=str(row.get("AlertType") or ""),
            reasons=str(row.get("Reasons") or ""),
            device_name=str(row.get("DeviceName") or ""),
            managed_device_id=row.get("ManagedDeviceId"),
            mode=str(row.get("Mode") or ""),
            code=str(row.get("Action") or ""),
            outcome=Outcome(row.get("Outcome")),
            reason=str(row.get("Reason") or ""),
            decided_at=row.get("DecidedAt"),
            acted_at=row.get("ActedAt"),
            slot_hour=str(row.get("SlotHour") or ""),
            attempts=int(row.get("Attempts") or 0),
            error=str(row.get("Error") or ""),
            etag=metadata.get("etag"),
        )


class RemediationLog(TableAdapter):
    async def get(self, device_id: str, key: str) -> LogEntry | None:
        entity = await self._get(device_id, key)
        return LogEntry.from_entity(entity) if entity is not None else None

    async def create(self, entry: LogEntry) -> tuple[LogEntry, bool]:
        """Insert the decision if the alert has none yet: (the stored entry, whether it is ours)."""
        try:
            result = await self._table.create_entity(entry.entity())
        except ResourceExistsError:
            existing = await self.get(entry.device_id, entry.row_key)
            if existing is None:  # deleted in between: cannot happen in normal operation
                raise LogConflict(f"decision row for alert {entry.alert_id} vanished") from None
            return existing, False
        return replace(entry, etag=result.get("etag")), True

    async def update(self, entry: LogEntry, *, force: bool = False) -> LogEntry:
        """Replace the row if nobody changed it since `entry` was read (or unconditionally)."""
        try:
            if force or entry.etag is None:
                result = await self._table.upsert_entity(entry.entity(), mode=UpdateMode.REPLACE)
            else:
                result = await self._table.update_entity(
                    entry.entity(),
                    mode=UpdateMode.REPLACE,
                    etag=entry.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise LogConflict(f"decision row for alert {entry.alert_id} changed: {exc}") from exc
        return replace(entry, etag=result.get("etag"))

    async def history(self, device_id: str) -> list[LogEntry]:
        """A device's remediation decisions, newest first."""
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": device_id})
        return [LogEntry.from_entity(row) async for row in rows]

    async def actions_in_hour(self, hour: str) -> int:
        try:
            row = await self._table.get_entity(RATE_LIMIT_PARTITION, hour)
        except ResourceNotFoundError:
            return 0
        return int(row.get("Count") or 0)

    async def reserve_slot(self, hour: str, limit: int) -> bool:
        """Take one action from the hour's budget; False when it is used up."""
        for _ in range(_CONFLICT_RETRIES):
            try:
                row = await self._table.get_entity(RATE_LIMIT_PARTITION, hour)
            except ResourceNotFoundError:
                row = None
            count = int(row.get("Count") or 0) if row is not None else 0
            if count >= limit:
                return False
            entity = {"PartitionKey": RATE_LIMIT_PARTITION, "RowKey": hour, "Count": count + 1}
            try:
                if row is None:
                    await self._table.create_entity(entity)
                else:
                    await self._table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=row.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                return True
            except (ResourceExistsError, ResourceModifiedError):
                await asyncio.sleep(random.uniform(0, 0.02))
        raise LogConflict(f"rate limit row {hour}: too many concurrent updates")
