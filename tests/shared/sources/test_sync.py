"""Delta sync against the Graph simulator, Azurite and the broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from local.graphsim.admin import SimAdmin
from shared.core.changes import DeviceChange
from shared.core.models import Transition
from shared.runtime import Runtime
from shared.sources.sync import DeltaSync, page_changes
from tests.graph_helpers import add_device
from tests.servicebus_helpers import body_json, drain_sessions, drain_subscription

AT = datetime(2026, 11, 29, tzinfo=UTC)


def queued(runtime: Runtime, stack) -> list[dict]:
    return [
        body_json(m)
        for m in drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    ]


async def sync(runtime: Runtime, **overrides) -> DeltaSync:
    rt = Runtime(replace(runtime.settings, **overrides)) if overrides else runtime
    return await rt.delta_sync()


async def test_baseline_then_only_what_changed_while_notifications_were_off(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    devices = [add_device(sim, name=f"PC-{i:02d}") for i in range(23)]
    runner = await sync(runtime, sync_page_size=5)

    baseline = await runner.run("test")
    assert (baseline.outcome, baseline.phase, baseline.changes) == ("completed", "baseline", 23)
    assert baseline.pages >= 5
    assert sorted(m["device_id"] for m in queued(runtime, stack)) == sorted(
        d["id"] for d in devices
    )

    sim.settings(notificationsEnabled=False)
    sim.patch_device(devices[0]["id"], isCompliant=False)
    sim.patch_device(devices[1]["id"], displayName="PC-RENAMED")
    sim.delete_device(devices[2]["id"])
    incremental = await runner.run("test")

    assert (incremental.outcome, incremental.phase, incremental.changes) == (
        "completed",
        "incremental",
        3,
    )
    changes = {m["device_id"]: m["change_type"] for m in queued(runtime, stack)}
    assert changes == {
        devices[0]["id"]: "updated",
        devices[1]["id"]: "updated",
        devices[2]["id"]: "deleted",
    }
    state = await (await runtime.bookkeeping()).sync_state()
    assert (
        state.phase == "incremental"
        and state.link
        and state.last_success_at
        and not state.lease_owner
    )


async def test_removed_device_found_by_sync_raises_device_deleted(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    device = add_device(sim, name="OLD-KIOSK")
    runner = await sync(runtime)
    pipeline = await runtime.pipeline()
    await runner.run("test")
    for message in queued(runtime, stack):
        await pipeline.process(DeviceChange.from_json(json.dumps(message)))

    sim.delete_device(device["id"], soft=True, notify=False)
    await runner.run("test")
    (message,) = queued(runtime, stack)
    outcome = await pipeline.process(DeviceChange.from_json(json.dumps(message)))

    assert outcome.transition is Transition.LOST
    assert outcome.reasons == ("DEVICE_DELETED",)
    (alert,) = [
        body_json(m)
        for m in drain_subscription(
            stack.service_bus_connection, runtime.settings.device_alerts_topic, "audit"
        )
    ]
    assert alert["data"]["detection"]["source"] == "sync"


async def test_expired_token_means_a_full_resync_without_duplicate_alerts(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    for i in range(6):
        add_device(sim, name=f"LAP-{i}", compliant=i % 2 == 0)
    runner = await sync(runtime)
    pipeline = await runtime.pipeline()
    await runner.run("test")
    for message in queued(runtime, stack):
        await pipeline.process(DeviceChange.from_json(json.dumps(message)))

    sim.expire_delta_tokens()
    result = await runner.run("test")
    outcomes = [
        await pipeline.process(DeviceChange.from_json(json.dumps(m)))
        for m in queued(runtime, stack)
    ]

    assert result.outcome == "completed" and result.full_resync and result.changes == 6
    assert {o.transition for o in outcomes} == {Transition.UNCHANGED}
    assert (
        drain_subscription(
            stack.service_bus_connection, runtime.settings.device_alerts_topic, "audit"
        )
        == []
    )
    assert (await (await runtime.bookkeeping()).sync_state()).full_resyncs == 1


async def test_a_second_run_while_one_holds_the_lease_is_turned_away(
    runtime: Runtime, sim: SimAdmin
) -> None:
    for i in range(30):
        add_device(sim, name=f"D{i}")
    sim.set_latency(30)
    first, second = await sync(runtime, sync_page_size=5), await sync(runtime, sync_page_size=5)
    results = await asyncio.gather(first.run("a"), second.run("b"))
    assert sorted(r.outcome for r in results) == ["busy", "completed"]


class FailingSink:
    """Lets `pages_ok` pages through to the real queue, then fails like a broker outage."""

    def __init__(self, inner, pages_ok: int) -> None:
        self._inner = inner
        self._left = pages_ok

    async def send(self, changes: Iterable[DeviceChange]) -> int:
        if self._left == 0:
            raise ConnectionError("broker unreachable")
        self._left -= 1
        return await self._inner.send(changes)


async def test_a_crash_mid_run_repeats_a_page_but_never_skips_one(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    devices = [add_device(sim, name=f"N{i}") for i in range(20)]
    books = await runtime.bookkeeping()
    crashing = DeltaSync(
        graph=runtime.graph_json(),
        books=books,
        sink=FailingSink(runtime.change_queue(), 2),
        page_size=4,
    )

    failed = await crashing.run("test")
    state = await books.sync_state()
    assert failed.outcome == "failed" and "broker unreachable" in failed.error
    assert (
        state.link
        and state.phase == "baseline"
        and not state.lease_owner
        and "broker unreachable" in state.last_error
    )

    resumed = await (await sync(runtime, sync_page_size=4)).run("test")
    assert resumed.outcome == "completed"
    seen = {m["device_id"] for m in queued(runtime, stack)}
    assert seen == {d["id"] for d in devices}


async def test_graph_throttling_during_sync_is_retried(runtime: Runtime, sim: SimAdmin) -> None:
    for i in range(8):
        add_device(sim, name=f"T{i}")
    sim.add_fault(status=429, count=2, retry_after=0, route="/devices/delta", method="GET")
    result = await (await sync(runtime, sync_page_size=3)).run("test")
    assert result.outcome == "completed" and result.changes == 8


@pytest.mark.parametrize("status", [403, 400])
async def test_a_graph_error_fails_the_run_and_is_recorded(
    runtime: Runtime, sim: SimAdmin, status: int
) -> None:
    sim.add_fault(
        status=status,
        count=1,
        route="/devices/delta",
        method="GET",
        code="Authorization_RequestDenied",
        message="Insufficient privileges",
    )
    result = await (await sync(runtime)).run("test")
    state = await (await runtime.bookkeeping()).sync_state()
    assert result.outcome == "failed"
    assert f"HTTP {status}" in state.last_error and "Insufficient privileges" in state.last_error
    assert state.last_success_at is None


def test_a_page_naming_one_device_in_two_cases_queues_it_once_in_lower_case() -> None:
    object_id = "3f2c0b8e-1d7a-4c1e-9a51-0a7e6b2f9c11"
    page = {
        "value": [
            {"id": object_id, "displayName": "PC-1"},
            {"id": object_id.upper(), "@removed": {"reason": "deleted"}},
            {"id": "  "},
        ]
    }

    (change,) = page_changes(page, "run-1", 0, AT)
    (same,) = page_changes({"value": [{"id": object_id}]}, "run-1", 0, AT)

    assert change.device_id == object_id
    assert change.change_type == "deleted"  # the last spelling of the object wins, as before
    assert change.facts is not None and change.facts.device["id"] == object_id
    assert change.message_id == same.message_id  # duplicate detection ignores the spelling
