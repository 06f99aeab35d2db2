"""The Service Bus adapter under concurrent use, against the local broker through the real SDK.

One SDK sender shared by concurrent coroutines fails in its link set-up (azure-sdk-for-python
#36334): these tests run many sends at once on a fresh runtime, the way 32 concurrent sessions
and simultaneous webhook POSTs use it.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from shared.adapters.servicebus import SendTimeout
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.runtime import Runtime
from shared.settings import Settings
from tests.alert_helpers import make_alert
from tests.servicebus_helpers import body_json, drain_sessions, drain_subscription


def alert(n: int) -> dict[str, Any]:
    return make_alert(alert_id=f"alert-{n}-{uuid.uuid4().hex}")


def change(n: int) -> DeviceChange:
    return DeviceChange(
        device_id=str(uuid.uuid4()),
        change_type="updated",
        source=Source.NOTIFICATION,
        message_id=f"m-{n}-{uuid.uuid4().hex}",
        correlation_id=f"c-{n}",
        received_at="2026-11-30T00:00:00Z",
    )


@pytest.mark.parametrize("senders", [1, 4])
async def test_concurrent_publishes_all_reach_the_topic(
    settings: Settings, stack, senders: int
) -> None:
    rt = Runtime(replace(settings, service_bus_senders=senders))
    try:
        alerts = [alert(n) for n in range(60)]
        await asyncio.gather(*(rt.publisher().publish(a) for a in alerts))
    finally:
        await rt.close()
    received = await asyncio.to_thread(
        drain_subscription, stack.service_bus_connection, settings.device_alerts_topic, "audit"
    )
    assert sorted(str(m.message_id) for m in received) == sorted(a["id"] for a in alerts)
    assert {body_json(m)["id"] for m in received} == {a["id"] for a in alerts}


async def test_concurrent_change_sends_each_queue_once(runtime: Runtime, stack) -> None:
    changes = [change(n) for n in range(50)]
    counts = await asyncio.gather(*(runtime.change_queue().send([c]) for c in changes))
    assert counts == [1] * 50
    received = await asyncio.to_thread(
        drain_sessions, stack.service_bus_connection, runtime.settings.device_changes_queue
    )
    assert sorted(str(m.message_id) for m in received) == sorted(c.message_id for c in changes)


async def test_pool_never_opens_more_senders_than_its_size(settings: Settings) -> None:
    rt = Runtime(replace(settings, service_bus_senders=3))
    try:
        await asyncio.gather(*(rt.publisher().publish(alert(n)) for n in range(30)))
        assert rt.publisher()._pool.open_senders <= 3
    finally:
        await rt.close()


async def test_a_failed_sender_is_replaced_and_later_sends_succeed(runtime: Runtime, stack) -> None:
    too_big = alert(0)
    too_big["data"] = {**too_big["data"], "padding": "x" * 400_000}
    with pytest.raises(Exception, match=r"(?i)size|large"):
        await runtime.publisher().publish(too_big)
    after = [alert(n) for n in range(1, 6)]
    await asyncio.gather(*(runtime.publisher().publish(a) for a in after))
    received = await asyncio.to_thread(
        drain_subscription,
        stack.service_bus_connection,
        runtime.settings.device_alerts_topic,
        "audit",
    )
    assert sorted(str(m.message_id) for m in received) == sorted(a["id"] for a in after)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a frozen broker."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


async def test_a_frozen_broker_fails_the_send_within_its_bound(
    settings: Settings, silent_listener: int
) -> None:
    frozen = replace(
        settings,
        service_bus_connection_string=(
            f"Endpoint=sb://127.0.0.1:{silent_listener};SharedAccessKeyName=RootManageSharedAccessKey;"
            "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
        ),
        enqueue_timeout_ms=500,
    )
    rt = Runtime(frozen)
    try:
        # SendTimeout comes only from the pool's bound; without it the SDK waits about 240 s
        # (and pytest-timeout would fail the test first).
        with pytest.raises(SendTimeout):
            await rt.change_queue().send([change(1)])
    finally:
        await asyncio.wait_for(rt.close(), 30)
