"""The whole path on the local stack, through function_app's declared triggers in the dev host:
Graph simulator → change notification → webhook → queue → processor → Tables → alert topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from local.devhost import DevHost
from local.graphsim.admin import SimAdmin
from shared.runtime import Runtime, use_runtime
from tests.alert_helpers import ALERT_VALIDATOR
from tests.conftest import CLIENT_STATE
from tests.graph_helpers import add_device
from tests.servicebus_helpers import body_json, drain_dead_letters, drain_subscription, send_raw


@pytest.fixture
async def host(runtime: Runtime, stack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DevHost]:
    monkeypatch.setenv("DEVICE_CHANGES_QUEUE", runtime.settings.device_changes_queue)
    monkeypatch.setenv("ServiceBusConnection", stack.service_bus_connection)
    use_runtime(runtime)
    try:
        async with DevHost(
            "function_app:app", port=0, only={"http", "servicebus"}, session_idle_timeout=0.2
        ) as running:
            yield running
    finally:
        use_runtime(None)


async def subscribe(stack, tenant: str, url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{stack.graph_url(tenant)}/subscriptions",
            json={
                "changeType": "updated,deleted",
                "notificationUrl": url,
                "resource": "devices",
                "expirationDateTime": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                "clientState": CLIENT_STATE,
            },
            headers={"Authorization": "Bearer t"},
        )
    assert response.status_code == 201, response.text


async def eventually(check, within: float = 30.0):
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_notification_becomes_history_and_exactly_one_alert(
    host: DevHost, runtime: Runtime, sim: SimAdmin, stack, tenant: str
) -> None:
    await subscribe(stack, tenant, f"{host.api_url}/graph/notifications")
    device = add_device(sim, name="E2E-LAPTOP")
    store = await runtime.store()

    await asyncio.to_thread(sim.patch_device, device["id"], displayName="E2E-LAPTOP-1")
    await asyncio.to_thread(sim.flush_notifications)
    await eventually(lambda: store.get_state(device["id"]))

    for _ in range(3):  # the change itself, then two notifications that carry nothing new
        await asyncio.to_thread(sim.patch_device, device["id"], isCompliant=False)
    await asyncio.to_thread(sim.flush_notifications)

    async def lost_recorded() -> bool:
        state = await store.get_state(device["id"])
        return state is not None and not state.record.eligible and not state.pending_alert

    await eventually(lost_recorded)
    await asyncio.sleep(0.5)  # let any stray duplicate reach the processor too
    messages = await asyncio.to_thread(
        drain_subscription,
        stack.service_bus_connection,
        runtime.settings.device_alerts_topic,
        "audit",
    )
    assert len(messages) == 1
    alert = body_json(messages[0])
    ALERT_VALIDATOR.validate(alert)
    assert alert["type"] == "devicemon.eligibility.lost"
    assert alert["data"]["device"]["displayName"] == "E2E-LAPTOP-1"
    assert alert["data"]["detection"]["source"] == "notification"
    history = [row async for row in store.history(device["id"])]
    assert [r.transition for r in history] == ["lost", "first_seen"]
    deliveries = await asyncio.to_thread(sim.deliveries, 0, "change")
    assert deliveries["deliveries"] and all(
        d.get("status") == 202 for d in deliveries["deliveries"]
    )


async def test_poison_message_is_dead_lettered_and_blocks_no_other_device(
    host: DevHost, runtime: Runtime, sim: SimAdmin, stack
) -> None:
    queue = runtime.settings.device_changes_queue
    await asyncio.to_thread(
        send_raw,
        stack.service_bus_connection,
        queue,
        "{this is not json",
        "poison-session",
        "poison-1",
    )
    device = add_device(sim)
    change = json.dumps({"device_id": device["id"], "message_id": "ok-1", "source": "sync"})
    await asyncio.to_thread(
        send_raw, stack.service_bus_connection, queue, change, device["id"], "ok-1"
    )

    store = await runtime.store()
    await eventually(lambda: store.get_state(device["id"]))

    async def dead_lettered():
        return await asyncio.to_thread(drain_dead_letters, stack.service_bus_connection, queue, 0.5)

    (dead,) = await eventually(dead_lettered, within=60)
    assert dead.message_id == "poison-1"
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert dead.delivery_count >= 9


async def test_missed_lifecycle_event_runs_a_sync_that_finds_silent_changes(
    host: DevHost, runtime: Runtime, sim: SimAdmin, stack, tenant: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            f"{stack.graph_url(tenant)}/subscriptions",
            json={
                "changeType": "updated,deleted",
                "notificationUrl": f"{host.api_url}/graph/notifications",
                "lifecycleNotificationUrl": f"{host.api_url}/graph/lifecycle",
                "resource": "devices",
                "expirationDateTime": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                "clientState": CLIENT_STATE,
            },
            headers={"Authorization": "Bearer t"},
        )
        assert created.status_code == 201, created.text
        device = add_device(sim, name="SILENT-1")
        store = await runtime.store()
        assert (await http.post(f"{host.api_url}/ops/sync")).status_code == 202
        await eventually(lambda: store.get_state(device["id"]))

        await asyncio.to_thread(sim.settings, notificationsEnabled=False)
        await asyncio.to_thread(sim.patch_device, device["id"], isCompliant=False)
        await asyncio.to_thread(sim.send_lifecycle, created.json()["id"], "missed")
        await asyncio.to_thread(sim.flush_notifications)

        async def lost() -> bool:
            state = await store.get_state(device["id"])
            return state is not None and not state.record.eligible

        await eventually(lost)
        (alert,) = [
            body_json(m)
            for m in await asyncio.to_thread(
                drain_subscription,
                stack.service_bus_connection,
                runtime.settings.device_alerts_topic,
                "audit",
            )
        ]
        assert alert["data"]["detection"]["source"] == "sync"

        health = await http.get(f"{host.api_url}/health")
        report = health.json()
        assert health.status_code == 200, report
        assert (
            report["status"] == "degraded"
        )  # this test made the subscription behind devicemon's back
        assert report["sync"]["lastSuccessAt"] and report["devices"]["total"] == 1
        assert report["devices"]["ineligible"] == 1


async def test_health_is_503_before_any_sync(host: DevHost) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        health = await http.get(f"{host.api_url}/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
