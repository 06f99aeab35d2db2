"""A Graph outage longer than the queue's ten quick deliveries: the processor schedules each next
try with a growing delay (zero under the tests' retry switch) instead of abandoning, so the change
is evaluated once Graph is back and nothing is dead-lettered. Through the dev host, the local
broker (scheduled messages) and the Graph simulator's fault injection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from local.devhost import DevHost
from local.graphsim.admin import SimAdmin
from shared.core.changes import DeviceChange, retry_of
from shared.core.models import Source
from shared.retry import MAX_REDELIVERIES, redelivery_delay
from shared.runtime import Runtime, use_runtime
from shared.settings import Settings
from tests.graph_helpers import add_device
from tests.servicebus_helpers import drain_dead_letters


@pytest.fixture
async def one_try(settings: Settings) -> AsyncIterator[Runtime]:
    # One Graph attempt per try, so the count of failed reads is the count of tries.
    rt = Runtime(replace(settings, graph_max_retries=0))
    yield rt
    await rt.close()


@pytest.fixture
async def host(one_try: Runtime, stack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DevHost]:
    monkeypatch.setenv("DEVICE_CHANGES_QUEUE", one_try.settings.device_changes_queue)
    monkeypatch.setenv("ServiceBusConnection", stack.service_bus_connection)
    use_runtime(one_try)
    try:
        async with DevHost(
            "function_app:app", port=0, only={"servicebus"}, session_idle_timeout=0.2
        ) as running:
            yield running
    finally:
        use_runtime(None)


def test_the_schedule_grows_then_levels_off() -> None:
    from shared import retry

    retry.set_testing(False)
    try:
        delays = [redelivery_delay(n) for n in range(1, MAX_REDELIVERIES + 1)]
    finally:
        retry.set_testing(True)
    assert delays[:6] == [10, 20, 40, 80, 160, 300]
    assert set(delays[5:]) == {300}
    assert sum(delays) > 30 * 60  # an outage of half an hour still ends in an evaluation


def test_a_retry_is_a_new_message_of_the_same_device() -> None:
    change = DeviceChange(
        "0b0c8c1e-6a0e-4d7b-9a59-2a4b3e6f7c81", "updated", Source.SYNC, "m-1", "c-1", ""
    )
    first, second = retry_of(change), retry_of(retry_of(change))
    assert (first.attempt, second.attempt) == (1, 2)
    assert len({change.message_id, first.message_id, second.message_id}) == 3
    assert first.correlation_id == change.correlation_id
    assert DeviceChange.from_json(second.to_json()).attempt == 2  # survives the queue


async def test_an_outage_longer_than_ten_deliveries_ends_in_an_evaluation_not_the_dlq(
    host: DevHost, one_try: Runtime, sim: SimAdmin, stack
) -> None:
    device = add_device(sim)
    # Twelve failed reads in a row: more than the queue's 10 deliveries would survive when
    # abandoned at once, fewer than the 1 + MAX_REDELIVERIES tries of the schedule.
    sim.add_fault(status=503, count=12, route="/devices/{id}", method="GET")
    change = DeviceChange(device["id"], "updated", Source.SYNC, "outage-1", "corr-outage", "")
    await one_try.change_queue().send([change])

    store = await one_try.store()
    for _ in range(600):
        if await store.get_state(device["id"]) is not None:
            break
        await asyncio.sleep(0.1)
    state = await store.get_state(device["id"])
    assert state is not None and state.record.correlation_id == "corr-outage"
    dead = await asyncio.to_thread(
        drain_dead_letters, stack.service_bus_connection, one_try.settings.device_changes_queue, 1
    )
    assert dead == []
    failures = await (await one_try.failure_log()).count_since(datetime(2000, 1, 1, tzinfo=UTC))
    assert failures == 12  # every failed try counted for health


def test_only_failures_that_may_pass_are_rescheduled() -> None:
    from kiota_abstractions.api_error import APIError

    from handlers.processor import may_pass
    from shared.adapters.store import HistoryConflict

    def graph(status: int) -> APIError:
        error = APIError(f"Graph answered {status}")
        error.response_status_code = status
        return error

    assert may_pass(ConnectionError("storage unreachable"))
    assert may_pass(graph(503)) and may_pass(graph(429)) and may_pass(graph(408))
    assert not may_pass(graph(400))  # a request Graph refuses will be refused again
    assert not may_pass(graph(403))
    assert not may_pass(HistoryConflict("0b0c8c1e-6a0e-4d7b-9a59-2a4b3e6f7c81", 3, 4))
