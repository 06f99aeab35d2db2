"""Stranded alerts: committed to DeviceState, never published, and a device that never changes
again. The sweep publishes them; health says so while they wait. Real Azurite, broker, Graph sim."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from handlers import read_api, upkeep
from local.graphsim.admin import SimAdmin
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.core.records import pending_alert_id
from shared.processing.pipeline import Pipeline
from shared.runtime import Runtime
from shared.settings import Settings
from tests.alert_helpers import ALERT_VALIDATOR
from tests.graph_helpers import add_device
from tests.health_helpers import fresh_bookkeeping, health_report
from tests.servicebus_helpers import body_json, drain_subscription


class BrokerDown(Exception):
    pass


class DownPublisher:
    async def publish(self, alert: dict[str, Any]) -> None:
        raise BrokerDown("the topic cannot be reached")


def change(device_id: str) -> DeviceChange:
    message_id = uuid.uuid4().hex
    return DeviceChange(
        device_id, "updated", Source.NOTIFICATION, message_id, message_id, "2026-11-30T00:00:00Z"
    )


def timer() -> func.TimerRequest:
    from azure.functions.timer import TimerRequest

    return TimerRequest(past_due=False)


@pytest.fixture
async def swept(settings: Settings) -> Any:
    # Sweep anything pending (the test cannot wait two minutes); health counts the same age.
    rt = Runtime(replace(settings, pending_alert_sweep_seconds=0))
    yield rt
    await rt.close()


async def strand_alerts(rt: Runtime, sim: SimAdmin, count: int) -> list[str]:
    """Devices first seen healthy, then losing compliance while the topic is down."""
    ids = [add_device(sim)["id"] for _ in range(count)]
    pipeline = await rt.pipeline()
    for object_id in ids:
        await pipeline.process(change(object_id))
        await asyncio.to_thread(sim.patch_device, object_id, notify=False, isCompliant=False)
    broken = Pipeline(
        graph=rt.graph(),
        store=await rt.store(),
        publisher=DownPublisher(),
        outbox=await rt.pending_alerts(),
        options=pipeline._options,
        event_source="urn:devicemon",
    )
    for object_id in ids:
        with pytest.raises(BrokerDown):
            await broken.process(change(object_id))
    return ids


async def test_the_sweep_publishes_stranded_alerts_once_and_health_tells(
    swept: Runtime, sim: SimAdmin, stack
) -> None:
    await fresh_bookkeeping(swept)
    status, report = await health_report(swept)
    assert (status, report["status"]) == (200, "healthy"), report["problems"]

    ids = await strand_alerts(swept, sim, 3)
    store = await swept.store()
    stranded = {i: pending_alert_id(await store.get_state(i)) for i in ids}
    assert all(stranded.values())
    held = await (await swept.pending_alerts()).held_before(datetime.now(UTC) + timedelta(1))
    assert {(h.object_id, h.alert_id) for h in held} == set(stranded.items())

    status, report = await health_report(swept)
    assert (status, report["status"]) == (200, "degraded")
    assert report["alerts"]["pendingOverdue"] == 3
    detail = await device_detail(swept, ids[0])
    assert detail["device"]["pendingAlertId"] == stranded[ids[0]]
    assert detail["history"][0]["alertId"] == stranded[ids[0]]
    assert detail["history"][0]["alertStatus"] == "pending"  # not presented as sent
    assert any("not published" in p for p in report["problems"])

    await upkeep.sweep_timer(timer(), runtime=swept)
    await upkeep.sweep_timer(timer(), runtime=swept)  # a second sweep finds nothing to do

    published = await asyncio.to_thread(
        drain_subscription,
        stack.service_bus_connection,
        swept.settings.device_alerts_topic,
        "audit",
    )
    alerts = [body_json(m) for m in published]
    for alert in alerts:
        ALERT_VALIDATOR.validate(alert)
    assert sorted(a["id"] for a in alerts) == sorted(str(v) for v in stranded.values())
    assert sorted(str(m.message_id) for m in published) == sorted(str(v) for v in stranded.values())
    assert {a["type"] for a in alerts} == {"devicemon.eligibility.lost"}
    for object_id in ids:
        assert pending_alert_id(await store.get_state(object_id)) is None
    assert await (await swept.pending_alerts()).held_before(datetime.now(UTC) + timedelta(1)) == []

    status, report = await health_report(swept)
    assert (status, report["status"]) == (200, "healthy"), report["problems"]
    detail = await device_detail(swept, ids[0])
    assert detail["device"]["pendingAlertId"] is None
    assert detail["history"][0]["alertStatus"] == "published"


async def device_detail(rt: Runtime, object_id: str) -> dict[str, Any]:
    """GET /api/devices/{id}, as an operator reads a timeline."""
    response = await read_api.get_device(
        func.HttpRequest(
            "GET", f"/api/devices/{object_id}", body=b"", route_params={"id": object_id}
        ),
        rt,
    )
    assert response.status_code == 200
    return dict(json.loads(response.get_body()))


async def test_a_republished_alert_that_had_reached_the_topic_is_not_delivered_twice(
    swept: Runtime, sim: SimAdmin, stack
) -> None:
    """The publish reached the topic, the process died before clearing PendingAlert: the sweep
    sends it again under the same message id and the topic's duplicate detection drops it."""
    (object_id,) = await strand_alerts(swept, sim, 1)
    store = await swept.store()
    pending = json.loads((await store.get_state(object_id)).pending_alert)  # type: ignore[union-attr]
    await swept.publisher().publish(pending)  # "reached the topic"

    await upkeep.sweep_timer(timer(), runtime=swept)
    published = await asyncio.to_thread(
        drain_subscription,
        stack.service_bus_connection,
        swept.settings.device_alerts_topic,
        "audit",
    )
    assert [m.message_id for m in published] == [pending["id"]]


async def test_an_index_row_whose_alert_was_published_is_dropped(
    swept: Runtime, sim: SimAdmin
) -> None:
    """A crash after clearing PendingAlert but before releasing the index row."""
    device = add_device(sim)
    index = await swept.pending_alerts()
    await (await swept.pipeline()).process(change(device["id"]))
    await index.hold(
        device["id"], "alert-long-gone", "devicemon.eligibility.lost", datetime.now(UTC)
    )
    _, report = await health_report(swept)
    assert report["alerts"]["pendingOverdue"] == 0  # its alert is not pending: nobody misses it

    await upkeep.sweep_timer(timer(), runtime=swept)
    assert await index.held_before(datetime.now(UTC) + timedelta(1)) == []


async def test_failed_attempts_over_the_threshold_turn_health_degraded(
    settings: Settings, sim: SimAdmin
) -> None:
    rt = Runtime(replace(settings, health_max_failures=2))
    try:
        await fresh_bookkeeping(rt)
        failures = await rt.failure_log()
        now = datetime.now(UTC)
        for n in range(3):
            await failures.record(at=now, trigger="processor", error=f"Boom {n}")
        # an old failure outside the window does not count
        await failures.record(at=now - timedelta(hours=2), trigger="processor", error="old")
        assert await failures.count_since(now - timedelta(minutes=15)) == 3

        status, report = await health_report(rt)
        assert (status, report["status"]) == (200, "degraded")
        assert report["processing"]["failures"] == 3
        assert await failures.prune(now - timedelta(hours=1)) == 1
    finally:
        await rt.close()
