"""The deadline timer through the real path: rows in Azurite, changes on the local broker's
session queue (duplicate detection on), the runtime's clock moved by the test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.functions.timer import TimerRequest

from handlers.deadlines import deadline_change, deadline_timer, run_deadlines
from local.stack import Stack
from shared.adapters.deadlines import DueRow, due_key
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.runtime import Runtime
from shared.settings import Settings
from tests.devhost_helpers import run_timer_in_dev_host
from tests.servicebus_helpers import body_json, drain_sessions

T0 = datetime(2026, 12, 1, 0, 15, 20, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def timed(settings: Settings, clock: Clock) -> AsyncIterator[Runtime]:
    # A short send bound, so the frozen-broker test fails in a second, not thirty.
    rt = Runtime(replace(settings, service_bus_send_timeout_seconds=1), clock=clock)
    yield rt
    await rt.close()


def queued(stack: Stack, settings: Settings) -> list[DeviceChange]:
    messages = drain_sessions(stack.service_bus_connection, settings.device_changes_queue, 0.5)
    for message in messages:
        assert body_json(message).get("observation") is None  # a bare hint: re-read at deadline
    return [DeviceChange.from_json(b"".join(m.body)) for m in messages]


def device() -> str:
    return str(uuid.uuid4())


def test_a_change_is_named_by_device_and_due_instant() -> None:
    row = DueRow("d-1", T0, due_key(T0), "etag")
    change = deadline_change(row, T0 + timedelta(seconds=40))
    again = deadline_change(replace(row, etag="other"), T0 + timedelta(minutes=3))
    assert change.source is Source.DEADLINE and change.facts is None
    assert change.message_id == again.message_id == change.correlation_id
    later = deadline_change(replace(row, due=T0 + timedelta(days=1)), T0)
    assert later.message_id != change.message_id
    assert deadline_change(replace(row, object_id="d-2"), T0).message_id != change.message_id


async def test_due_devices_are_queued_once_and_their_rows_forgotten(
    timed: Runtime, clock: Clock, stack: Stack, settings: Settings
) -> None:
    index = await timed.deadlines()
    overdue, due_now, later = device(), device(), device()
    await index.schedule(overdue, T0 - timedelta(hours=6), None)
    await index.schedule(due_now, T0 - timedelta(seconds=20), None)  # 00:15:00
    await index.schedule(later, T0 + timedelta(seconds=30), None)  # 00:15:50

    await deadline_timer(TimerRequest(past_due=False), timed)

    changes = await asyncio.to_thread(queued, stack, settings)
    assert sorted(c.device_id for c in changes) == sorted([overdue, due_now])
    assert {c.source for c in changes} == {Source.DEADLINE}
    assert [r async for p in index.due(T0) for r in p] == []  # handed over, forgotten

    clock.now = T0 + timedelta(seconds=40)  # 00:16:00: the third one's minute
    run = await run_deadlines(timed)
    assert (run.queued, run.deleted, run.finished) == (1, 1, True)
    assert [c.device_id for c in await asyncio.to_thread(queued, stack, settings)] == [later]


async def test_a_rerun_of_rows_already_queued_does_not_queue_them_twice(
    timed: Runtime, stack: Stack, settings: Settings
) -> None:
    index = await timed.deadlines()
    ids = [device() for _ in range(3)]
    for object_id in ids:
        await index.schedule(object_id, T0 - timedelta(minutes=1), None)
    assert (await run_deadlines(timed)).queued == 3
    # A run that queued them and died before deleting its rows: the next run queues them again.
    for object_id in ids:
        await index.schedule(object_id, T0 - timedelta(minutes=1), None)
    assert (await run_deadlines(timed)).queued == 3

    changes = await asyncio.to_thread(queued, stack, settings)
    assert sorted(c.device_id for c in changes) == sorted(ids)  # the broker dropped the copies


async def test_rows_stay_due_while_the_queue_cannot_take_them(
    timed: Runtime, stack: Stack, settings: Settings
) -> None:
    index = await timed.deadlines()
    object_id = device()
    await index.schedule(object_id, T0 - timedelta(minutes=2), None)
    await timed.change_queue().send([])  # the sender's link is open before the broker stops
    stack.freeze("broker")
    try:
        with pytest.raises(TimeoutError):
            await run_deadlines(timed)
    finally:
        stack.thaw("broker")
    assert [r.object_id async for p in index.due(T0) for r in p] == [object_id]

    assert (await run_deadlines(timed)).queued == 1
    assert [c.device_id for c in await asyncio.to_thread(queued, stack, settings)] == [object_id]


async def test_a_run_past_its_budget_leaves_the_rest_to_the_next_run(
    timed: Runtime, stack: Stack, settings: Settings
) -> None:
    index = await timed.deadlines()
    ids = [device() for _ in range(5)]
    for object_id in ids:
        await index.schedule(object_id, T0 - timedelta(minutes=3), None)
    first = await run_deadlines(timed, budget_seconds=0, page_size=2)
    assert (first.queued, first.deleted, first.finished) == (2, 2, False)
    rest = await run_deadlines(timed, page_size=2)
    assert (rest.queued, rest.finished) == (3, True)
    changes = await asyncio.to_thread(queued, stack, settings)
    assert sorted(c.device_id for c in changes) == sorted(ids)


async def test_the_timer_declared_in_function_app_runs_in_the_dev_host(
    runtime: Runtime, stack: Stack, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEADLINE_SCHEDULE", "0 */1 * * * *")
    index = await runtime.deadlines()
    due = device()
    await index.schedule(due, datetime.now(UTC) - timedelta(minutes=1), None)

    async def handed_over() -> bool | None:
        left = [row async for page in index.due(datetime.now(UTC)) for row in page]
        return True if not left else None

    assert await run_timer_in_dev_host(runtime, "run_deadlines", handed_over)
    [change] = queued(stack, settings)
    assert (change.device_id, change.source) == (due, Source.DEADLINE)
