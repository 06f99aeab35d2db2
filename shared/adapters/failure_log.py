"""The ProcessingFailures table: one row per failed attempt at a queue message, for health.

A failing attempt is retried by Service Bus and may well succeed later, so a single failure is
not news; many in a short time are (Graph throttling us, storage down, a bug). Health counts the
rows of the last window; the sweep prunes rows older than a day.

Row: PartitionKey = the minute of the failure, `yyyymmddHHMM` UTC (so a window is one range query
on the key), RowKey = a random id, `At`, `Trigger` (processor, teams, remediation), `DeviceId`,
`MessageId`, `DeliveryCount`, `Error` (type and message, at most 1,000 characters).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.adapters.table_adapter import TableAdapter


def minute_key(at: datetime) -> str:
    return at.strftime("%Y%m%d%H%M")


class FailureLog(TableAdapter):
    async def record(
        self,
        *,
        at: datetime,
        trigger: str,
        error: str,
        device_id: str = "",
        message_id: str = "",
        delivery_count: int = 0,
    ) -> None:
        await self._table.create_entity(
            {
                "PartitionKey": minute_key(at),
                "RowKey": uuid.uuid4().hex,
                "At": at,
                "Trigger": trigger,
                "DeviceId": device_id,
                "MessageId": message_id,
                "DeliveryCount": delivery_count,
                "Error": error[:1000],
            }
        )

    async def count_since(self, since: datetime) -> int:
        count = 0
        async for _ in self._table.query_entities(
            "PartitionKey ge @since", parameters={"since": minute_key(since)}, select=["RowKey"]
        ):
            count += 1
        return count

    async def prune(self, before: datetime) -> int:
        pruned = 0
        async for entity in self._table.query_entities(
            "PartitionKey lt @before",
            parameters={"before": minute_key(before)},
            select=["PartitionKey", "RowKey"],
        ):
            await self._table.delete_entity(entity["PartitionKey"], entity["RowKey"])
            pruned += 1
        return pruned
