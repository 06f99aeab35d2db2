"""The PendingAlerts table: an index of alerts committed to DeviceState but not yet published.

DeviceState's `PendingAlert` column is the outbox (shared/processing/pipeline.py). When a publish fails and
the device never changes again, nothing would ever retry it; the sweep does, and to find such
alerts without scanning every DeviceState row it reads this table, which holds only alerts in
flight (usually none, a few hundred in a mass event).

Row: PartitionKey = device object id, RowKey = alert id, `HeldAt` (when the pipeline took it on),
`AlertType`. The pipeline writes the row *before* it commits the pending alert and deletes it
*after* it clears the column, so every pending alert has a row; a crash between the steps can
only leave a row whose alert is no longer pending, which the sweep drops (docs/tables.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.data.tables import UpdateMode

from shared import logs
from shared.adapters.table_adapter import TableAdapter
from shared.core.records import StateRow, pending_alert_id

log = logging.getLogger("devicemon.sweep")


@dataclass(frozen=True, slots=True)
class HeldAlert:
    object_id: str
    alert_id: str
    alert_type: str
    held_at: datetime


class PendingAlerts(TableAdapter):
    async def hold(self, object_id: str, alert_id: str, alert_type: str, at: datetime) -> None:
        await self._table.upsert_entity(
            {
                "PartitionKey": object_id,
                "RowKey": alert_id,
                "HeldAt": at,
                "AlertType": alert_type,
            },
            mode=UpdateMode.REPLACE,
        )

    async def release(self, object_id: str, alert_id: str) -> None:
        # azure-data-tables ignores a missing entity here: released twice (a retry, or the
        # sweep and the pipeline both) is fine.
        await self._table.delete_entity(object_id, alert_id)

    async def held_before(self, cutoff: datetime) -> list[HeldAlert]:
        return [
            HeldAlert(e["PartitionKey"], e["RowKey"], str(e.get("AlertType") or ""), e["HeldAt"])
            async for e in self._table.query_entities(
                "HeldAt lt @cutoff", parameters={"cutoff": cutoff}
            )
        ]


async def stranded(
    index: PendingAlerts,
    read_state: Callable[[str], Awaitable[StateRow | None]],
    cutoff: datetime,
) -> list[HeldAlert]:
    """Index rows held since before `cutoff` whose alert is still pending in DeviceState.

    A row can outlive its alert (a failure between clearing the column and deleting the row);
    until the sweep drops it, it must not count as an alert that nobody received.
    """
    found = []
    for held in await index.held_before(cutoff):
        if pending_alert_id(await read_state(held.object_id)) == held.alert_id:
            found.append(held)
    return found


@dataclass(frozen=True, slots=True)
class SweepResult:
    examined: int = 0
    republished: int = 0
    dropped: int = 0  # index rows whose alert was no longer pending
    failed: int = 0


async def sweep(
    index: PendingAlerts,
    *,
    read_state: Callable[[str], Awaitable[StateRow | None]],
    publish_pending: Callable[[StateRow], Awaitable[StateRow]],
    now: datetime,
    older_than: timedelta,
) -> SweepResult:
    """Publish every alert pending for longer than `older_than`, and drop stale index rows.

    Republishing is safe at any time: the alert keeps its deterministic id as message id, so the
    topic's duplicate detection drops a copy that did reach it, and the pending column is
    cleared under the state row's ETag. Younger alerts are left to the pipeline that holds them.
    """
    examined = republished = dropped = failed = 0
    for held in await index.held_before(now - older_than):
        examined += 1
        try:
            state = await read_state(held.object_id)
            was_pending = pending_alert_id(state) == held.alert_id
            if was_pending:
                assert state is not None
                state = await publish_pending(state)
                republished += 1
                logs.event(
                    log,
                    "alert_swept",
                    level=logging.WARNING,
                    device_id=held.object_id,
                    alert_id=held.alert_id,
                    type=held.alert_type,
                    pending_seconds=round((now - held.held_at).total_seconds()),
                )
            if pending_alert_id(state) != held.alert_id:
                await index.release(held.object_id, held.alert_id)
                dropped += 0 if was_pending else 1
        except Exception as exc:  # one device's failure must not stop the sweep of the others
            failed += 1
            logs.event(
                log,
                "alert_sweep_failed",
                level=logging.ERROR,
                device_id=held.object_id,
                alert_id=held.alert_id,
                error=f"{type(exc).__name__}: {exc}",
            )
    return SweepResult(examined, republished, dropped, failed)
