"""The deadline index: the partition key arithmetic (pure), then the table in Azurite: schedule,
move, clear, the key-range read of what is due, and deleting only what was handed over."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.adapters.deadlines import DeadlineIndex, DueRow, due_key, first_minute, now_key
from shared.settings import Settings

T0 = datetime(2026, 12, 1, 0, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "key"),
    [
        (T0, "2026-12-01T00:15Z"),
        (T0 + timedelta(microseconds=1), "2026-12-01T00:16Z"),
        (T0 + timedelta(seconds=59, microseconds=999_999), "2026-12-01T00:16Z"),
        (T0 - timedelta(microseconds=1), "2026-12-01T00:15Z"),
        (datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC), "2027-01-01T00:00Z"),
        # Another offset is the same instant: keys are UTC.
        (datetime(2026, 12, 1, 1, 15, 0, tzinfo=timezone(timedelta(hours=1))), "2026-12-01T00:15Z"),
    ],
)
def test_a_row_is_due_from_the_first_whole_minute_at_or_after_its_instant(
    due: datetime, key: str
) -> None:
    assert due_key(due) == key


@pytest.mark.parametrize(
    ("now", "key"),
    [
        (T0, "2026-12-01T00:15Z"),
        (T0 + timedelta(seconds=59, microseconds=999_999), "2026-12-01T00:15Z"),
        (T0 - timedelta(microseconds=1), "2026-12-01T00:14Z"),
    ],
)
def test_a_run_reads_up_to_its_own_minute(now: datetime, key: str) -> None:
    assert now_key(now) == key


@pytest.mark.parametrize(
    "offset",
    [timedelta(0), timedelta(microseconds=1), timedelta(seconds=1), timedelta(seconds=59)],
)
def test_every_row_a_run_reads_is_already_due(offset: timedelta) -> None:
    # A row in a partition a run at `now` reads (key <= now's minute) has due <= now.
    due = T0 + offset
    first_run = first_minute(due)
    assert due <= first_run < due + timedelta(minutes=1)  # read less than a minute late
    assert first_run.second == first_run.microsecond == 0
    assert now_key(first_run) == due_key(due)
    assert now_key(first_run - timedelta(microseconds=1)) < due_key(due)  # and not earlier


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        due_key(datetime(2026, 12, 1, 0, 15))


class Requests:
    """Counts the REST requests a Table client sends (the unit Table storage bills)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response: Any) -> None:
        self.count += 1


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[tuple[DeadlineIndex, Requests]]:
    requests = Requests()
    assert settings.tables_connection_string is not None
    service = TableServiceClient.from_connection_string(
        settings.tables_connection_string, raw_response_hook=requests
    )
    index = DeadlineIndex(service, settings.deadlines_table)
    await index.ensure_table()
    requests.count = 0
    yield index, requests
    await index.close()
    await service.close()


def device() -> str:
    return str(uuid.uuid4())


async def all_due(index: DeadlineIndex, now: datetime, page_size: int = 1000) -> list[DueRow]:
    return [row async for page in index.due(now, page_size=page_size) for row in page]


async def test_schedule_move_and_clear(counted: tuple[DeadlineIndex, Requests]) -> None:
    index, requests = counted
    a = device()
    first, moved = T0 + timedelta(hours=1, seconds=20), T0 + timedelta(hours=5, seconds=10)

    await index.schedule(a, first, None)
    assert requests.count == 1  # a first schedule is one upsert
    assert await index.scheduled(a, first)

    requests.count = 0
    await index.schedule(a, moved, first)
    assert requests.count == 2  # upsert the new row, delete the old one
    assert not await index.scheduled(a, first) and await index.scheduled(a, moved)

    requests.count = 0
    await index.schedule(a, moved + timedelta(seconds=30), moved)
    assert requests.count == 1  # same minute: the upsert replaces the row
    [row] = await all_due(index, moved + timedelta(minutes=1))
    assert (row.object_id, row.due) == (a, moved + timedelta(seconds=30))

    await index.schedule(a, None, moved + timedelta(seconds=30))
    assert await all_due(index, moved + timedelta(days=365)) == []


async def test_a_run_reads_only_rows_due_by_its_minute(
    counted: tuple[DeadlineIndex, Requests],
) -> None:
    index, _ = counted
    past, now_exact, this_minute, later = device(), device(), device(), device()
    await index.schedule(past, T0 - timedelta(days=2), None)
    await index.schedule(now_exact, T0, None)
    await index.schedule(this_minute, T0 + timedelta(seconds=1), None)  # due 00:15:01
    await index.schedule(later, T0 + timedelta(days=3), None)

    due = await all_due(index, T0 + timedelta(seconds=30))
    assert {r.object_id for r in due} == {past, now_exact}
    assert [r.partition_key for r in due] == sorted(r.partition_key for r in due)
    assert all(r.due <= T0 + timedelta(seconds=30) for r in due)
    due = await all_due(index, T0 + timedelta(minutes=1))
    assert {r.object_id for r in due} == {past, now_exact, this_minute}


async def test_nothing_due_costs_one_request_however_many_rows_wait(
    counted: tuple[DeadlineIndex, Requests],
) -> None:
    index, requests = counted
    for n in range(300):
        await index.schedule(device(), T0 + timedelta(minutes=1 + n), None)
    requests.count = 0
    assert await all_due(index, T0) == []
    assert requests.count == 1


async def test_done_deletes_a_page_in_one_transaction_per_minute_and_100_rows(
    counted: tuple[DeadlineIndex, Requests],
) -> None:
    index, requests = counted
    for _ in range(150):
        await index.schedule(device(), T0 + timedelta(seconds=10), None)  # partition 00:16
    for _ in range(3):
        await index.schedule(device(), T0 - timedelta(minutes=5), None)  # partition 00:10
    now = T0 + timedelta(minutes=2)
    requests.count = 0
    pages = [page async for page in index.due(now, page_size=1000)]
    assert requests.count == 1 and sum(map(len, pages)) == 153
    requests.count = 0
    assert await index.done(pages[0]) == 153
    assert requests.count == 3  # 00:10 (3 rows), 00:16 (100 + 50)
    assert await all_due(index, now) == []


async def test_a_row_rescheduled_into_the_same_minute_since_it_was_read_stays(
    counted: tuple[DeadlineIndex, Requests],
) -> None:
    index, _ = counted
    moved, gone, plain = device(), device(), device()
    due = T0 + timedelta(seconds=5)
    for object_id in (moved, gone, plain):
        await index.schedule(object_id, due, None)
    [page] = [page async for page in index.due(T0 + timedelta(minutes=1))]
    # Meanwhile the processor rescheduled one device within the minute and removed another's
    # row: the transaction is refused and the rows are deleted one by one, the moved one kept.
    await index.schedule(moved, due + timedelta(seconds=20), due)
    await index.schedule(gone, None, due)

    assert await index.done(page) == 2
    [left] = await all_due(index, T0 + timedelta(minutes=1))
    assert (left.object_id, left.due) == (moved, due + timedelta(seconds=20))


async def test_pages_follow_the_continuation(counted: tuple[DeadlineIndex, Requests]) -> None:
    index, requests = counted
    ids = {device() for _ in range(25)}
    for n, object_id in enumerate(sorted(ids)):
        await index.schedule(object_id, T0 - timedelta(minutes=n % 4), None)
    requests.count = 0
    pages = [page async for page in index.due(T0, page_size=10)]
    assert [len(p) for p in pages] == [10, 10, 5] and requests.count == 3
    assert {r.object_id for p in pages for r in p} == ids


async def test_one_index_serves_concurrent_evaluations(
    counted: tuple[DeadlineIndex, Requests],
) -> None:
    """The runtime's one DeadlineIndex is told by every pipeline invocation the host runs at once
    (host.json: 32 sessions): each device ends with exactly its latest row."""
    index, _ = counted
    ids = [device() for _ in range(64)]
    first = [T0 - timedelta(minutes=n % 3) for n in range(64)]
    await asyncio.gather(*(index.schedule(i, at, None) for i, at in zip(ids, first, strict=True)))
    # every device moves at once, half to a later minute, half to nothing (no longer due)
    moved = [T0 - timedelta(minutes=5) if n % 2 else None for n in range(64)]
    await asyncio.gather(
        *(index.schedule(i, to, at) for i, to, at in zip(ids, moved, first, strict=True))
    )
    rows = [row for page in [p async for p in index.due(T0)] for row in page]
    expected = {i: to for i, to in zip(ids, moved, strict=True) if to is not None}
    assert {r.object_id: r.due for r in rows} == expected
    assert len(rows) == len(expected)
