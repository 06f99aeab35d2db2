"""The local AMQP broker, exercised with the real azure-servicebus SDK (sync and aio).

One broker subprocess serves the whole module; every test uses its own entity names
(the broker creates entities on first use from config patterns), so tests are
independent of each other and of ordering.

Opening an SDK sender/receiver costs ~0.5 s whatever the broker does (the SDK polls
one frame per 50 ms during the handshake), so the aio tests open all the handlers
they need concurrently to keep the module fast.
"""

from __future__ import annotations

import asyncio
import copy
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.aio import ServiceBusClient as AioServiceBusClient
from azure.servicebus.exceptions import (
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
)

from local.broker import DEFAULT_CONFIG, connection_string
from local.ports import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]

# Receives that expect messages return as soon as max_message_count is reached, so
# WAIT only bounds failures; EMPTY_WAIT is what "nothing there" costs.
WAIT = 5
EMPTY_WAIT = 0.5
DLQ = ServiceBusSubQueue.DEAD_LETTER


def _broker_config() -> dict[str, Any]:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["queues"] = {
        "maxdc-*": {"max_delivery_count": 3},
        "shortlock-*": {"lock_duration_seconds": 1},
        "dedupe-*": {"duplicate_detection": True},
        "ttl-*": {
            "default_message_ttl_seconds": 0.25,
            "dead_lettering_on_message_expiration": True,
        },
        **config["queues"],
    }
    return config


@pytest.fixture(scope="module")
def broker_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    config_path = tmp_path_factory.mktemp("broker") / "broker.json"
    config_path.write_text(json.dumps(_broker_config()))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.broker", "--port", str(port), "--config", str(config_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout=15)
    except TimeoutError:
        proc.kill()
        raise
    yield port
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    # Clean exit on SIGTERM, and nothing noisy on the way.
    assert proc.returncode == 0, err.decode()
    assert out == b""
    assert err == b"", err.decode()


@pytest.fixture(scope="module")
def conn_str(broker_port: int) -> str:
    return connection_string(broker_port)


@pytest.fixture
def client(conn_str: str) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(conn_str) as sb_client:
        yield sb_client


@pytest.fixture
async def aio_client(conn_str: str) -> AsyncIterator[AioServiceBusClient]:
    async with AioServiceBusClient.from_connection_string(conn_str) as sb_client:
        yield sb_client


@asynccontextmanager
async def opened(*handlers: Any) -> AsyncIterator[None]:
    """Open aio senders/receivers concurrently, close them concurrently."""
    await asyncio.gather(*(handler.__aenter__() for handler in handlers))
    try:
        yield
    finally:
        await asyncio.gather(*(handler.close() for handler in handlers))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------- basics


def test_connection_string_shape() -> None:
    assert connection_string(5672) == (
        "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
    )


def test_send_receive_complete_preserves_properties(client: ServiceBusClient) -> None:
    queue = unique("plain")
    sent = ServiceBusMessage(
        b'{"device": 1}',
        message_id="msg-1",
        session_id="not-a-session-queue",
        correlation_id="corr-1",
        content_type="application/json",
        subject="device.changed",
        to="someone",
        reply_to="replies",
        time_to_live=timedelta(minutes=5),
        application_properties={"tenant": "t1", "count": 7, "flag": True, "ratio": 0.5},
    )
    before = datetime.now(UTC) - timedelta(seconds=5)
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(sent)
        sender.send_messages(ServiceBusMessage("second"))
    with client.get_queue_receiver(queue, max_wait_time=WAIT) as receiver:
        received = receiver.receive_messages(max_message_count=2, max_wait_time=WAIT)
        assert [str(m) for m in received] == ['{"device": 1}', "second"]
        first = received[0]
        assert first.message_id == "msg-1"
        assert first.session_id == "not-a-session-queue"
        assert first.correlation_id == "corr-1"
        assert first.content_type == "application/json"
        assert first.subject == "device.changed"
        assert first.to == "someone"
        assert first.reply_to == "replies"
        assert first.time_to_live == timedelta(minutes=5)
        assert first.application_properties == {
            b"tenant": b"t1",
            b"count": 7,
            b"flag": True,
            b"ratio": 0.5,
        }
        assert first.delivery_count == 0
        first_seq, second_seq = first.sequence_number, received[1].sequence_number
        assert first_seq is not None and second_seq is not None and second_seq > first_seq
        assert first.enqueued_time_utc is not None and first.enqueued_time_utc > before
        assert first.locked_until_utc is not None
        assert first.locked_until_utc > datetime.now(UTC) + timedelta(seconds=20)
        for message in received:
            receiver.complete_message(message)
        assert receiver.peek_messages(max_message_count=5) == []


async def test_batch_send_and_message_batch(aio_client: AioServiceBusClient) -> None:
    queue = unique("batch")
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(queue, max_wait_time=WAIT)
    async with opened(sender, receiver):
        await sender.send_messages([ServiceBusMessage(f"list-{i}") for i in range(50)])
        batch = await sender.create_message_batch()
        for i in range(50):
            batch.add_message(ServiceBusMessage(f"batch-{i}", application_properties={"i": i}))
        await sender.send_messages(batch)
        bodies: list[str] = []
        while len(bodies) < 100:
            messages = await receiver.receive_messages(max_message_count=100, max_wait_time=WAIT)
            assert messages, f"stalled after {len(bodies)} messages"
            for message in messages:
                bodies.append(str(message))
                await receiver.complete_message(message)
    # FIFO, each inner message of a batch stored as its own message.
    assert bodies == [f"list-{i}" for i in range(50)] + [f"batch-{i}" for i in range(50)]


async def test_receive_and_delete(aio_client: AioServiceBusClient) -> None:
    queue = unique("rad")
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(
        queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=WAIT
    )
    async with opened(sender, receiver):
        await sender.send_messages([ServiceBusMessage(f"m{i}") for i in range(3)])
        messages = await receiver.receive_messages(max_message_count=3, max_wait_time=WAIT)
        assert [str(m) for m in messages] == ["m0", "m1", "m2"]
        assert await receiver.peek_messages(max_message_count=10) == []


async def test_unknown_entities_are_not_found(conn_str: str) -> None:
    async def attach(receiver: Any) -> None:
        with pytest.raises(MessagingEntityNotFoundError):
            async with receiver:
                await receiver.receive_messages(max_wait_time=1)

    async with AioServiceBusClient.from_connection_string(conn_str, retry_total=0) as sb_client:
        await asyncio.gather(
            attach(sb_client.get_queue_receiver("no/such/thing")),
            attach(sb_client.get_subscription_receiver(unique("device-alerts"), "no-such-sub")),
        )


# ---------------------------------------------------------------------------------- settlement


async def test_abandon_redelivers_with_incremented_count(aio_client: AioServiceBusClient) -> None:
    queue = unique("abandon")
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(queue, max_wait_time=WAIT)
    async with opened(sender, receiver):
        await sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
        (first,) = await receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert (str(first), first.delivery_count) == ("a", 0)
        await receiver.abandon_message(first)
        # The abandoned message keeps its place at the head of the queue.
        (again,) = await receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert (str(again), again.delivery_count) == ("a", 1)
        assert again.sequence_number == first.sequence_number
        await receiver.complete_message(again)


async def test_dead_letter_with_reason(aio_client: AioServiceBusClient) -> None:
    queue = unique("dlq")
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(queue, max_wait_time=WAIT)
    dlq = aio_client.get_queue_receiver(queue, sub_queue=DLQ, max_wait_time=WAIT)
    async with opened(sender, receiver, dlq):
        await sender.send_messages(ServiceBusMessage("poison", application_properties={"k": "v"}))
        (message,) = await receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        await receiver.dead_letter_message(
            message, reason="BadPayload", error_description="not json"
        )
        (dead,) = await dlq.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert str(dead) == "poison"
        assert dead.dead_letter_reason == "BadPayload"
        assert dead.dead_letter_error_description == "not json"
        assert dead.application_properties is not None
        assert dead.application_properties[b"k"] == b"v"
        await dlq.complete_message(dead)
        assert await receiver.peek_messages(max_message_count=5) == []


async def test_max_delivery_count_moves_to_dead_letter(aio_client: AioServiceBusClient) -> None:
    queue = unique("maxdc")  # max_delivery_count = 3
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(queue, max_wait_time=WAIT)
    dlq = aio_client.get_queue_receiver(queue, sub_queue=DLQ, max_wait_time=WAIT)
    async with opened(sender, receiver, dlq):
        await sender.send_messages(ServiceBusMessage("flaky"))
        for attempt in range(3):
            (message,) = await receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
            assert message.delivery_count == attempt
            await receiver.abandon_message(message)
        (dead,) = await dlq.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert str(dead) == "flaky"
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert dead.dead_letter_error_description
        await dlq.complete_message(dead)
        assert await receiver.peek_messages(max_message_count=5) == []


async def test_lock_expiry_redelivers(aio_client: AioServiceBusClient) -> None:
    queue = unique("shortlock")  # lock_duration_seconds = 1
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(queue, max_wait_time=WAIT)
    async with opened(sender, receiver):
        await sender.send_messages(ServiceBusMessage("slow"))
        (first,) = await receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert first.delivery_count == 0
        # Never settled: once the lock lapses the broker hands it out again.
        (again,) = await receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert (str(again), again.delivery_count) == ("slow", 1)
        await receiver.complete_message(again)


async def test_renew_lock_defer_and_peek(aio_client: AioServiceBusClient) -> None:
    queue = unique("ops")
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(queue, max_wait_time=WAIT)
    async with opened(sender, receiver):
        await sender.send_messages([ServiceBusMessage("later"), ServiceBusMessage("now")])
        peeked = await receiver.peek_messages(max_message_count=10)
        assert [str(m) for m in peeked] == ["later", "now"]
        later, now = await receiver.receive_messages(max_message_count=2, max_wait_time=WAIT)
        old_until = later.locked_until_utc
        assert old_until is not None
        await asyncio.sleep(0.01)
        assert await receiver.renew_message_lock(later) > old_until
        await receiver.defer_message(later)
        await receiver.complete_message(now)
        assert later.sequence_number is not None
        (deferred,) = await receiver.receive_deferred_messages([later.sequence_number])
        assert str(deferred) == "later"
        await receiver.complete_message(deferred)
        assert await receiver.peek_messages(max_message_count=10) == []


async def test_duplicate_detection_drops_repeated_message_id(
    aio_client: AioServiceBusClient,
) -> None:
    queue = unique("dedupe")
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(queue, max_wait_time=WAIT)
    async with opened(sender, receiver):
        await sender.send_messages(ServiceBusMessage("first", message_id="alert-1"))
        # Accepted by the broker (no error for the sender) and silently dropped.
        await sender.send_messages(ServiceBusMessage("again", message_id="alert-1"))
        await sender.send_messages(
            [
                ServiceBusMessage("other", message_id="alert-2"),
                ServiceBusMessage("in batch", message_id="alert-1"),
            ]
        )
        peeked = await receiver.peek_messages(max_message_count=10)
        assert [str(m) for m in peeked] == ["first", "other"]


async def test_expired_message_is_dead_lettered(aio_client: AioServiceBusClient) -> None:
    queue = unique("ttl")  # default ttl 0.25 s, dead_lettering_on_message_expiration
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(queue, max_wait_time=WAIT)
    dlq = aio_client.get_queue_receiver(queue, sub_queue=DLQ, max_wait_time=WAIT)
    async with opened(sender, receiver, dlq):
        await sender.send_messages(ServiceBusMessage("stale"))
        await asyncio.sleep(0.3)
        # As in Azure, expiry is noticed when a receiver reaches the message: this
        # receive is what moves it to the dead-letter queue.
        assert await receiver.receive_messages(max_wait_time=EMPTY_WAIT) == []
        (dead,) = await dlq.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert (str(dead), dead.dead_letter_reason) == ("stale", "TTLExpiredException")
        await dlq.complete_message(dead)


# ---------------------------------------------------------------------------------- topics


async def test_topic_fans_out_to_each_subscription_with_its_own_dlq(
    aio_client: AioServiceBusClient,
) -> None:
    topic = unique("device-alerts")  # subscriptions: teams, remediation; duplicate detection
    async with aio_client.get_topic_sender(topic) as sender:
        # Sent before any receiver exists: subscriptions exist with the topic.
        await sender.send_messages(ServiceBusMessage("alert", message_id="a-1"))
        await sender.send_messages(ServiceBusMessage("alert again", message_id="a-1"))
    teams = aio_client.get_subscription_receiver(topic, "teams", max_wait_time=WAIT)
    remediation = aio_client.get_subscription_receiver(topic, "remediation", max_wait_time=WAIT)
    teams_dlq = aio_client.get_subscription_receiver(
        topic, "teams", sub_queue=DLQ, max_wait_time=WAIT
    )
    remediation_dlq = aio_client.get_subscription_receiver(
        topic, "remediation", sub_queue=DLQ, max_wait_time=WAIT
    )

    async def teams_dead_letters() -> None:
        (message,) = await teams.receive_messages(max_message_count=5, max_wait_time=1)
        assert str(message) == "alert"
        await teams.dead_letter_message(message, reason="TeamsDown", error_description="503")
        (dead,) = await teams_dlq.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert (dead.dead_letter_reason, dead.dead_letter_error_description) == ("TeamsDown", "503")
        await teams_dlq.complete_message(dead)

    async def remediation_completes() -> None:
        (message,) = await remediation.receive_messages(max_message_count=5, max_wait_time=1)
        assert str(message) == "alert"
        await remediation.complete_message(message)
        assert await remediation_dlq.peek_messages(max_message_count=5) == []

    async with opened(teams, remediation, teams_dlq, remediation_dlq):
        await asyncio.gather(teams_dead_letters(), remediation_completes())


# ---------------------------------------------------------------------------------- sessions


async def test_session_queue_requires_session_id(aio_client: AioServiceBusClient) -> None:
    async with aio_client.get_queue_sender(unique("device-changes")) as sender:
        with pytest.raises(ServiceBusError, match="SessionId"):
            await sender.send_messages(ServiceBusMessage("no session"))


async def test_specific_session_in_order_with_state(aio_client: AioServiceBusClient) -> None:
    queue = unique("device-changes")
    sender = aio_client.get_queue_sender(queue)
    receiver = aio_client.get_queue_receiver(queue, session_id="device-1", max_wait_time=WAIT)
    contender = aio_client.get_queue_receiver(queue, session_id="device-1")

    async def contend() -> None:
        # Another receiver cannot take a session that is locked.
        with pytest.raises(SessionCannotBeLockedError):
            async with contender:
                await contender.receive_messages(max_wait_time=1)

    async with opened(sender, receiver):
        contention = asyncio.create_task(contend())
        await sender.send_messages(
            [ServiceBusMessage(f"d1-{i}", session_id="device-1") for i in range(10)]
            + [ServiceBusMessage(f"d2-{i}", session_id="device-2") for i in range(3)]
        )
        session = receiver.session
        assert session.session_id == "device-1"
        assert session.locked_until_utc is not None
        assert session.locked_until_utc > datetime.now(UTC)
        messages = await receiver.receive_messages(max_message_count=10, max_wait_time=WAIT)
        assert [str(m) for m in messages] == [f"d1-{i}" for i in range(10)]
        assert {m.session_id for m in messages} == {"device-1"}
        await receiver.abandon_message(messages[0])
        for message in messages[1:]:
            await receiver.complete_message(message)
        (retry,) = await receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert (str(retry), retry.delivery_count) == ("d1-0", 1)
        await receiver.complete_message(retry)
        assert await session.get_state() is None
        await session.set_state(b"cursor=10")
        assert await session.get_state() == b"cursor=10"
        assert await session.renew_lock() > datetime.now(UTC)
        await contention
    # The state outlives the session lock.
    async with aio_client.get_queue_receiver(queue, session_id="device-1") as receiver:
        assert await receiver.session.get_state() == b"cursor=10"
        assert await receiver.peek_messages(max_message_count=5) == []


async def test_next_available_sessions_go_to_different_receivers(
    aio_client: AioServiceBusClient,
) -> None:
    queue = unique("device-changes")
    async with aio_client.get_queue_sender(queue) as sender:
        await sender.send_messages(
            [ServiceBusMessage(f"{s}-{i}", session_id=s) for s in ("A", "B") for i in range(2)]
        )
    first, second = (
        aio_client.get_queue_receiver(queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=WAIT)
        for _ in range(2)
    )
    async with opened(first, second):
        assert {first.session.session_id, second.session.session_id} == {"A", "B"}
        for receiver in (first, second):
            sid = receiver.session.session_id
            messages = await receiver.receive_messages(max_message_count=2, max_wait_time=WAIT)
            assert [str(m) for m in messages] == [f"{sid}-0", f"{sid}-1"]
            for message in messages:
                await receiver.complete_message(message)


def test_next_available_with_no_session_times_out(conn_str: str) -> None:
    queue = unique("device-changes")
    started = time.monotonic()
    with (
        ServiceBusClient.from_connection_string(conn_str, retry_total=0) as sb_client,
        pytest.raises(OperationTimeoutError),
        sb_client.get_queue_receiver(
            queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1
        ) as receiver,
    ):
        receiver.receive_messages(max_wait_time=1)
    # Generous bound: this guards against hanging forever, not against slowness.
    assert time.monotonic() - started < 30


async def test_concurrent_session_receivers_drain_without_duplicates(conn_str: str) -> None:
    queue = unique("device-changes")
    sessions, per_session = 40, 5
    expected = {f"s{s}": [f"s{s}-{i}" for i in range(per_session)] for s in range(sessions)}
    received: dict[str, list[str]] = {}
    async with AioServiceBusClient.from_connection_string(conn_str, retry_total=0) as client:
        async with client.get_queue_sender(queue) as sender:
            # Interleaved across sessions, as devices would send them.
            await sender.send_messages(
                [
                    ServiceBusMessage(bodies[i], session_id=sid)
                    for i in range(per_session)
                    for sid, bodies in expected.items()
                ]
            )

        async def worker() -> None:
            while True:
                try:
                    async with client.get_queue_receiver(
                        queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=0.5
                    ) as receiver:
                        sid = receiver.session.session_id
                        while True:
                            messages = await receiver.receive_messages(
                                max_message_count=10, max_wait_time=EMPTY_WAIT
                            )
                            for message in messages:
                                assert message.session_id == sid
                                received.setdefault(sid, []).append(str(message))
                                await receiver.complete_message(message)
                            if len(messages) < 10:  # everything was sent up front
                                break
                except OperationTimeoutError:
                    return  # no session left

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(16))), timeout=60)
    assert received == expected  # every message exactly once, in order within its session
