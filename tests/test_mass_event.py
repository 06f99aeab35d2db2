"""The bad day, through the real path: many devices change at once.

function_app's triggers run in the dev host with host.json as shipped (32 concurrent sessions,
16 concurrent calls), against the local broker through the real azure-servicebus SDK, Azurite
and the Graph simulator; Teams cards go to the local Workflows stand-in. Every transition must
give exactly one alert, nothing may be dead-lettered or left pending, and the Teams channel gets
a mass-event summary instead of a card per device.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.devhost import DevHost
from local.graphsim.admin import SimAdmin
from local.teams_sink import TeamsSink, describe_card
from shared.adapters.pending_alerts import stranded
from shared.runtime import Runtime, use_runtime
from shared.settings import Settings
from tests.alert_helpers import ALERT_VALIDATOR
from tests.conftest import CLIENT_STATE
from tests.graph_helpers import hybrid_fleet
from tests.servicebus_helpers import (
    body_json,
    drain_dead_letters,
    drain_sessions,
    drain_subscription,
)

# Each scenario moves its fleet through baseline, loss and recovery on two shared cores.
pytestmark = pytest.mark.timeout(420)
# 96 devices keep every one of the host's 32 sessions busy three times over, and their 192
# alerts are far more than the cards a mass-event summary allows; `make chaos` moves 200 through
# the same path under faults.
FLEET = int(os.environ.get("MASS_FLEET", "96"))
# The delta path queues a whole round at once, like the notification path, and is bound by the
# same 32 sessions: 64 devices keep every session busy twice over. `make chaos` moves 200
# devices through the sync under faults (docs/reliability.md).
SYNC_FLEET = int(os.environ.get("MASS_SYNC_FLEET", "64"))


@pytest.fixture
async def sink() -> AsyncIterator[TeamsSink]:
    async with TeamsSink() as running:
        yield running


@pytest.fixture
async def mass_runtime(settings: Settings, sink: TeamsSink) -> AsyncIterator[Runtime]:
    rt = Runtime(replace(settings, teams_webhook_url=sink.url("mass")))
    yield rt
    await rt.close()


@pytest.fixture
async def host(
    mass_runtime: Runtime, stack, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DevHost]:
    s = mass_runtime.settings
    monkeypatch.setenv("DEVICE_CHANGES_QUEUE", s.device_changes_queue)
    monkeypatch.setenv("DEVICE_ALERTS_TOPIC", s.device_alerts_topic)
    monkeypatch.setenv("ServiceBusConnection", stack.service_bus_connection)
    use_runtime(mass_runtime)
    try:
        # host.json as shipped (32 sessions, 16 calls), but sessions released after 0.2 s idle
        # instead of 2 s: the Python SDK opens a connection per session receiver, so with the
        # shipped idle time 200 one-message sessions take minutes here (docs/performance.md).
        async with DevHost(
            "function_app:app", port=0, only={"http", "servicebus"}, session_idle_timeout=0.2
        ) as running:
            yield running
    finally:
        use_runtime(None)


async def eventually(check: Callable[[], Any], within: float = 180.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.5)


async def settled(rt: Runtime, ids: list[str], eligible: bool) -> bool:
    """Every device evaluated to `eligible` with no alert left pending."""
    wanted = set(ids)
    done = 0
    # One scan of the (small, per-test) table per poll, not 200 point reads.
    async for state in (await rt.store()).states():
        if state.record.object_id in wanted:
            if state.record.eligible is not eligible or state.pending_alert:
                return False
            done += 1
    return done == len(wanted)


async def take_alerts(stack: Any, rt: Runtime) -> list[dict[str, Any]]:
    messages = await asyncio.to_thread(
        drain_subscription,
        stack.service_bus_connection,
        rt.settings.device_alerts_topic,
        "audit",
        2.0,
    )
    alerts = [body_json(m) for m in messages]
    for message, alert in zip(messages, alerts, strict=True):
        ALERT_VALIDATOR.validate(alert)
        assert message.message_id == alert["id"]
    return alerts


async def nothing_lost(stack: Any, rt: Runtime) -> None:
    s = rt.settings
    connection = stack.service_bus_connection
    # The three dead-letter queues are read at once: each read ends by waiting for nothing.
    dead_lettered = await asyncio.gather(
        asyncio.to_thread(drain_dead_letters, connection, s.device_changes_queue, 0.5),
        *(
            asyncio.to_thread(
                drain_subscription, connection, s.device_alerts_topic, subscription, 0.5, True
            )
            for subscription in ("teams", "remediation")
        ),
    )
    assert [(d.message_id, d.dead_letter_reason) for dead in dead_lettered for d in dead] == []
    # An index row may outlive its alert (the sweep timer, not run here, drops it): what must
    # be empty is the set of alerts still waiting to be published.
    store = await rt.store()
    waiting = await stranded(
        await rt.pending_alerts(), store.get_state, datetime.now(UTC) + timedelta(days=1)
    )
    assert waiting == []


async def baseline(host: DevHost, rt: Runtime, sim: SimAdmin, count: int) -> list[str]:
    devices = hybrid_fleet(count)
    await asyncio.to_thread(sim.upsert_devices, devices, False)
    ids = [d["id"] for d in devices]
    result = await (await rt.delta_sync()).run("baseline")
    assert result.outcome == "completed", result
    await eventually(lambda: settled(rt, ids, True))
    return ids


async def expect_alerts(stack: Any, rt: Runtime, ids: list[str], kind: str) -> list[dict[str, Any]]:
    alerts = await take_alerts(stack, rt)
    assert Counter(a["type"] for a in alerts) == {f"devicemon.eligibility.{kind}": len(ids)}
    assert sorted(a["subject"] for a in alerts) == sorted(f"devices/{i}" for i in ids)
    return alerts


def mass_cards(sink: TeamsSink) -> list[str]:
    return [
        describe_card(card) for card in sink.cards("mass") if "MASS EVENT" in describe_card(card)
    ]


async def test_96_devices_disabled_at_once_by_notification_then_enabled(
    host: DevHost, mass_runtime: Runtime, sim: SimAdmin, stack, tenant: str, sink: TeamsSink
) -> None:
    rt = mass_runtime
    ids = await baseline(host, rt, sim, FLEET)
    await take_alerts(stack, rt)  # first sightings publish nothing; drain to be sure
    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{stack.graph_url(tenant)}/subscriptions",
            json={
                "changeType": "updated,deleted",
                "notificationUrl": f"{host.api_url}/graph/notifications",
                "resource": "devices",
                "expirationDateTime": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                "clientState": CLIENT_STATE,
            },
            headers={"Authorization": "Bearer t"},
        )
    assert created.status_code == 201, created.text

    await asyncio.to_thread(
        sim.patch_devices, [{"id": i, "accountEnabled": False} for i in ids], True
    )
    await asyncio.to_thread(sim.flush_notifications, 60.0)
    await eventually(lambda: settled(rt, ids, False))
    lost = await expect_alerts(stack, rt, ids, "lost")
    assert {a["data"]["detection"]["source"] for a in lost} == {"notification"}
    assert all("DEVICE_DISABLED" in a["data"]["current"]["reasons"] for a in lost)
    deliveries = (await asyncio.to_thread(sim.deliveries, 0, "change"))["deliveries"]
    assert deliveries and {d.get("status") for d in deliveries} == {202}

    await asyncio.to_thread(
        sim.patch_devices, [{"id": i, "accountEnabled": True} for i in ids], True
    )
    await asyncio.to_thread(sim.flush_notifications, 60.0)
    await eventually(lambda: settled(rt, ids, True))
    await expect_alerts(stack, rt, ids, "restored")
    await nothing_lost(stack, rt)

    async def summary_posted() -> list[str]:
        return mass_cards(sink)

    cards = await eventually(summary_posted, within=60)
    assert any("devices changed eligibility" in c for c in cards), cards
    # One summary instead of a card per alert: far fewer cards than alerts.
    assert len(sink.cards("mass")) <= 2 * rt.settings.teams_mass_threshold + 10


async def test_64_devices_losing_hybrid_join_at_once_found_by_the_delta_sync(
    host: DevHost, mass_runtime: Runtime, sim: SimAdmin, stack
) -> None:
    rt = mass_runtime
    ids = await baseline(host, rt, sim, SYNC_FLEET)
    await take_alerts(stack, rt)

    await asyncio.to_thread(
        sim.patch_devices, [{"id": i, "trustType": "Workplace"} for i in ids], False
    )
    result = await (await rt.delta_sync()).run("mass")
    assert result.outcome == "completed" and result.changes >= SYNC_FLEET, result
    await eventually(lambda: settled(rt, ids, False))
    lost = await expect_alerts(stack, rt, ids, "lost")
    assert {a["data"]["detection"]["source"] for a in lost} == {"sync"}

    await asyncio.to_thread(
        sim.patch_devices, [{"id": i, "trustType": "ServerAd"} for i in ids], False
    )
    await (await rt.delta_sync()).run("repaired")
    await eventually(lambda: settled(rt, ids, True))
    await expect_alerts(stack, rt, ids, "restored")
    await nothing_lost(stack, rt)


@pytest.fixture
async def http_only_host(
    runtime: Runtime, stack, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DevHost]:
    """The HTTP routes alone: the queue keeps what the webhook sent, for counting."""
    monkeypatch.setenv("DEVICE_CHANGES_QUEUE", runtime.settings.device_changes_queue)
    monkeypatch.setenv("ServiceBusConnection", stack.service_bus_connection)
    use_runtime(runtime)
    try:
        async with DevHost("function_app:app", port=0, only={"http"}) as running:
            yield running
    finally:
        use_runtime(None)


def notification_post(tenant: str, device_id: str) -> dict[str, Any]:
    """One change notification as Graph's docs show it (change-notifications-delivery-webhooks.md)."""
    return {
        "value": [
            {
                "id": str(uuid.uuid4()),
                "subscriptionId": "e3bd2a5c-4b55-4a47-97cc-5ec1c8b1b4a1",
                "subscriptionExpirationDateTime": "2026-12-02T11:00:00.0000000Z",
                "clientState": CLIENT_STATE,
                "changeType": "updated",
                "resource": f"devices/{device_id}",
                "tenantId": tenant,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Device",
                    "@odata.id": f"devices/{device_id}",
                    "id": device_id,
                },
            }
        ]
    }


async def test_50_concurrent_webhook_posts_are_all_accepted_and_queued_once(
    http_only_host: DevHost, runtime: Runtime, stack, tenant: str
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(50)]
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    f"{http_only_host.api_url}/graph/notifications",
                    json=notification_post(tenant, i),
                )
                for i in ids
            )
        )
    assert [a.status_code for a in answers] == [202] * 50
    queued = await asyncio.to_thread(
        # A session each: more readers than the helper's default take them in fewer rounds.
        drain_sessions,
        stack.service_bus_connection,
        runtime.settings.device_changes_queue,
        workers=20,
    )
    assert sorted(str(m.session_id) for m in queued) == sorted(ids)
    assert len({m.message_id for m in queued}) == 50
