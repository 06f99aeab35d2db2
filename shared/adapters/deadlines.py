"""The deadline index: when each device must be evaluated again, in a table of its own.

An evaluation that knows when access will end (a grace period's expiry, the check-in validity
period, the Error state's seven days) sets `Evaluation.next_check`: the warning time, the
deadline, or a follow-up. Finding the devices whose time has come by reading DeviceState would
scan the whole fleet every minute; this table holds one row per scheduled device, keyed so that
"everything due by now" is one key-range query that reads only what is due (docs/deadlines.md).

Row: PartitionKey = the minute the row becomes due, UTC, as sortable text (`2026-12-01T00:16Z`,
the due instant rounded *up*: every row a run reads is due, so a device evaluated by the run never
sees its own deadline still ahead and keeps it unscheduled), RowKey = device object id, `Due` =
the exact instant. Rows are deleted once handed to the queue, so the table holds one row per
scheduled device and a run reads only rows due since the last run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableTransactionError, UpdateMode

from shared import logs
from shared.adapters.table_adapter import TableAdapter

log = logging.getLogger("devicemon.deadlines")
# The most rows one query response holds (Table service maximum), and the most operations one
# entity group transaction may hold.
PAGE_SIZE = 1000
TRANSACTION_SIZE = 100
_KEY_FORMAT = "%Y-%m-%dT%H:%MZ"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("deadline instants must be timezone-aware")
    return moment.astimezone(UTC)


def first_minute(due: datetime) -> datetime:
    """The first whole minute at or after `due`, UTC: when a timer that runs at second 0 of
    every minute (DEADLINE_SCHEDULE's default) first reads a row due at `due`, less than a
    minute after it."""
    moment = _utc(due)
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def due_key(due: datetime) -> str:
    """The partition of a row due at `due`: its first whole minute."""
    return first_minute(due).strftime(_KEY_FORMAT)


def now_key(now: datetime) -> str:
    """The last partition a run at `now` may read: the current minute (rounded down)."""
    return _utc(now).strftime(_KEY_FORMAT)


@dataclass(frozen=True, slots=True)
class DueRow:
    object_id: str
    due: datetime
    partition_key: str
    # The row as read: deleted only if still so (a device rescheduled since keeps its new row).
    etag: str


class DeadlineIndex(TableAdapter):
    """Implements the pipeline's DeadlineScheduler (shared/processing/pipeline.py) and what the
    deadline timer (handlers/deadlines.py) reads and clears."""

    async def schedule(
        self, object_id: str, due: datetime | None, previous_due: datetime | None
    ) -> None:
        """Move the device's row from `previous_due` to `due` (None: no row).

        The new row is written first and must succeed (the pipeline then fails and retries: a
        lost row would be a missed deadline). The previous row is removed on a best-effort
        basis: one left behind only costs a re-evaluation that changes nothing."""
        key = due_key(due) if due is not None else None
        if due is not None and key is not None:
            await self._table.upsert_entity(
                {"PartitionKey": key, "RowKey": object_id, "Due": _utc(due)},
                mode=UpdateMode.REPLACE,
            )
        if previous_due is None or due_key(previous_due) == key:
            return
        try:
            # Unconditional, and a row already gone (the timer took it) is not an error.
            await self._table.delete_entity(due_key(previous_due), object_id)
        except Exception as exc:
            logs.event(
                log,
                "deadline_orphaned",
                level=logging.WARNING,
                device_id=object_id,
                previous_due=_utc(previous_due).isoformat(),
                error=type(exc).__name__,
            )

    async def due(
        self, now: datetime, *, page_size: int = PAGE_SIZE
    ) -> AsyncIterator[list[DueRow]]:
        """Every row due by `now`, a page (one request) at a time, oldest minute first.

        `PartitionKey le <now's minute>` reads the table from its first key to that one: the
        rows not yet due are never read, and rows are deleted once handled, so the range holds
        only what is due now (plus what a failed run left)."""
        pages = self._table.query_entities(
            "PartitionKey le @until",
            parameters={"until": now_key(now)},
            select=["PartitionKey", "RowKey", "Due"],
            results_per_page=page_size,
        ).by_page()
        async for page in pages:
            rows = [
                DueRow(
                    object_id=entity["RowKey"],
                    due=_due_of(entity),
                    partition_key=entity["PartitionKey"],
                    etag=entity.metadata.get("etag") or "*",
                )
                async for entity in page
            ]
            if rows:
                yield rows

    async def done(self, rows: Iterable[DueRow]) -> int:
        """Delete handled rows, unless rescheduled since they were read; returns how many are
        gone. One request per partition and 100 rows (an entity group transaction); a
        transaction refused because one row moved or went is retried row by row."""
        by_partition: defaultdict[str, list[DueRow]] = defaultdict(list)
        for row in rows:
            by_partition[row.partition_key].append(row)
        removed = 0
        for group in by_partition.values():
            for start in range(0, len(group), TRANSACTION_SIZE):
                chunk = group[start : start + TRANSACTION_SIZE]
                try:
                    await self._table.submit_transaction(
                        [
                            (
                                "delete",
                                {"PartitionKey": r.partition_key, "RowKey": r.object_id},
                                {"etag": r.etag, "match_condition": MatchConditions.IfNotModified},
                            )
                            for r in chunk
                        ]
                    )
                    removed += len(chunk)
                except TableTransactionError:
                    for row in chunk:
                        removed += await self._delete_one(row)
        return removed

    async def _delete_one(self, row: DueRow) -> int:
        try:
            await self._table.delete_entity(
                row.partition_key,
                row.object_id,
                etag=row.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            return 0  # rescheduled into the same minute since it was read: that row stays
        return 1  # deleted, or already gone (the SDK ignores a 404 here)

    async def scheduled(self, object_id: str, due: datetime) -> bool:
        """Whether the device has a row for `due` (for the CLI and tests)."""
        return await self._get(due_key(due), object_id) is not None


def _due_of(entity: dict[str, object]) -> datetime:
    value = entity.get("Due")
    if isinstance(value, datetime):
        return _utc(value)
    # A row written without its instant: the partition's minute is when it became due.
    return datetime.strptime(str(entity["PartitionKey"]), _KEY_FORMAT).replace(tzinfo=UTC)
