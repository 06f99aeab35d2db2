"""Device ids in another case than Graph's, through the real path (issue 17 item 1).

Graph object ids are case-insensitive GUIDs and Graph writes them in lower case, but a
notification may name a device in upper case. Table storage keys are case-sensitive: before the
ids were normalised at the edge, such a notification read no DeviceState row (wrong key), took
the device for new, replaced its version-1 history row with a new `first_seen`, then failed its
state commit against the real row 5 times per delivery until the message was dead-lettered.

Everything here goes through function_app's declared triggers in the dev host: the webhook, the
`ops/sync` route, the queue, the processor, Azurite, the broker.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from local.devhost import DevHost
from local.graphsim.admin import SimAdmin
from shared.adapters.store import DeviceStore
from shared.core.records import HistoryRow, StateRow
from shared.runtime import Runtime, use_runtime
from tests.conftest import CLIENT_STATE
from tests.graph_helpers import add_device
from tests.servicebus_helpers import body_json, drain_dead_letters, drain_subscription

T = TypeVar("T")
# Log events that mean the processor fought over a device or gave up on a message.
TROUBLE = frozenset({"state_conflict", "processing_failed", "message_poison"})


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


async def eventually(check: Callable[[], Awaitable[T]], within: float = 30.0) -> T:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def notification(tenant: str, object_id: str) -> dict[str, Any]:
    """One change notification as Graph posts it, naming the device by `object_id` as given."""
    return {
        "id": str(uuid.uuid4()),
        "subscriptionId": str(uuid.uuid4()),
        "subscriptionExpirationDateTime": datetime.now(UTC).isoformat(),
        "clientState": CLIENT_STATE,
        "changeType": "updated",
        "resource": f"devices/{object_id}",
        "tenantId": tenant,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Device",
            "@odata.id": f"devices/{object_id}",
            "id": object_id,
        },
    }


async def post_notification(host: DevHost, tenant: str, object_id: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{host.api_url}/graph/notifications",
            json={"value": [notification(tenant, object_id)]},
        )
    assert response.status_code == 202, response.text


async def run_sync(host: DevHost) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{host.api_url}/ops/sync")
    assert response.status_code == 202, response.text


def events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "devicemon.event", None)]


def named(records: list[logging.LogRecord], *names: str) -> list[logging.LogRecord]:
    return [r for r in records if getattr(r, "devicemon.event", None) in names]


async def all_states(store: DeviceStore) -> list[StateRow]:
    return [row async for row in store.states()]


async def all_history(store: DeviceStore, object_id: str) -> list[HistoryRow]:
    return [row async for row in store.history(object_id)]


@pytest.mark.parametrize("first_seen_by", ["sync", "notification"])
async def test_upper_case_notification_for_a_known_device_keeps_its_history(
    host: DevHost,
    runtime: Runtime,
    sim: SimAdmin,
    stack,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
    first_seen_by: str,
) -> None:
    caplog.set_level(logging.INFO, logger="devicemon")
    device = add_device(sim, name="CASE-LAPTOP")
    object_id = device["id"]
    assert object_id == object_id.lower()  # Graph's own spelling
    store = await runtime.store()

    if first_seen_by == "sync":
        await run_sync(host)
    else:
        await post_notification(host, tenant, object_id)
    await eventually(lambda: store.get_state(object_id))
    (baseline,) = await all_history(store, object_id)
    assert (baseline.record.version, baseline.transition) == (1, "first_seen")
    assert baseline.record.source == first_seen_by

    # A real change that only the upper-case notification tells the processor about.
    await asyncio.to_thread(sim.patch_device, object_id, notify=False, isCompliant=False)
    caplog.clear()
    await post_notification(host, tenant, object_id.upper())

    async def settled() -> bool:
        # The change is recorded, or the processor fought over the device or gave up on it.
        return bool(named(events(caplog), *TROUBLE)) or await _lost(store, object_id)

    await eventually(settled)

    assert named(events(caplog), *TROUBLE) == []
    rows = await all_history(store, object_id)
    assert [(r.record.version, r.transition) for r in rows] == [(2, "lost"), (1, "first_seen")]
    assert rows[1] == baseline  # version 1 is exactly what the first sighting wrote
    assert rows[0].record.object_id == object_id
    assert rows[0].record.source == "notification"
    states = await all_states(store)
    assert [s.record.object_id for s in states] == [object_id]
    assert states[0].record.version == 2
    (alert,) = await asyncio.to_thread(
        drain_subscription,
        stack.service_bus_connection,
        runtime.settings.device_alerts_topic,
        "audit",
    )
    assert body_json(alert)["subject"] == f"devices/{object_id}"
    dead = await asyncio.to_thread(
        drain_dead_letters, stack.service_bus_connection, runtime.settings.device_changes_queue
    )
    assert dead == []


async def _lost(store: DeviceStore, object_id: str) -> bool:
    state = await store.get_state(object_id)
    return state is not None and not state.record.eligible and not state.pending_alert
