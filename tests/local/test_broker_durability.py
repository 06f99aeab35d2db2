"""The broker's journal: SIGKILL the broker, restart it on the same port and journal, and check
with the real azure-servicebus SDK that exactly what it acknowledged comes back.

One scenario runs once for the module (``restarted``): it leaves every kind of durable state on
its own entity (settled and unsettled messages, dead letters, a deferred message, duplicate
detection, a topic's subscriptions, a session with state, receive-and-delete, scheduled and
cancelled messages), kills the broker with everything still connected and restarts it. Each test
then reads one entity. Two more tests kill the broker while a sender or a completing receiver
is busy, which is what issue 17 saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusSubQueue,
)
from azure.servicebus.aio import ServiceBusClient as AioServiceBusClient
from proton import Message

from local.broker import DEFAULT_CONFIG, Server, connection_string, parse_config
from local.broker.codec import encode_stored, parse_message
from local.broker.journal import SqliteJournal
from local.ports import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 15  # bounds a receive that expects messages; never reached when things work
DLQ = ServiceBusSubQueue.DEAD_LETTER
# A hang guard for the background sender/receiver, not a performance bound.
PROGRESS_TIMEOUT = 60


def _config() -> dict[str, Any]:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["queues"] = {"dur-*": {"duplicate_detection": True}, **config["queues"]}
    return config


class BrokerProcess:
    """One broker subprocess with a journal, restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.journal = directory / "journal.sqlite"
        self.config = directory / "broker.json"
        self.config.write_text(json.dumps(_config()))
        # A file, not a pipe: nobody reads a pipe while the broker runs, and a full one
        # would stall it. Every run appends; a killed broker writes nothing.
        self.log = directory / "broker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conn_str(self) -> str:
        return connection_string(self.port)

    def args(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "local.broker",
            "--port",
            str(self.port),
            "--config",
            str(self.config),
            "--journal",
            str(self.journal),
        ]

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.args(), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port, timeout=15)
        except TimeoutError:
            self.proc.kill()
            raise

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        assert self.proc.wait(timeout=15) == -9
        self.proc = None

    def close(self) -> None:
        """SIGTERM; a journaled broker exits 0, and said nothing in any of its lives."""
        if self.proc is not None:
            self.proc.terminate()
            assert self.proc.wait(timeout=15) == 0
            self.proc = None
        assert self.log.read_text() == ""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path)
    process.start()
    try:
        yield process
        process.close()
    finally:
        if process.proc is not None:
            process.proc.kill()
            process.proc.wait()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def bodies(messages: list[ServiceBusReceivedMessage]) -> list[str]:
    return [str(m) for m in messages]


def receive_exactly(receiver: Any, count: int) -> list[ServiceBusReceivedMessage]:
    received: list[ServiceBusReceivedMessage] = []
    while len(received) < count:
        batch = receiver.receive_messages(
            max_message_count=count - len(received), max_wait_time=WAIT
        )
        assert batch, f"stalled after {len(received)} of {count} messages"
        received += batch
    return received


def drain(client: ServiceBusClient, queue: str) -> list[str]:
    """Everything in a queue, taken with receive-and-delete."""
    out: list[str] = []
    with client.get_queue_receiver(
        queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=1
    ) as receiver:
        while batch := receiver.receive_messages(max_message_count=500, max_wait_time=1):
            out += bodies(batch)
    return out


# ------------------------------------------------------------------------------ the scenario


@dataclass
class Restarted:
    conn_str: str
    settle_queue: str = field(default_factory=lambda: unique("dur-settle"))
    abandoned_seq: int = 0
    locked_seqs: list[int] = field(default_factory=list)
    defer_queue: str = field(default_factory=lambda: unique("dur-defer"))
    deferred_seq: int = 0
    dedupe_queue: str = field(default_factory=lambda: unique("dur-dedupe"))
    dedupe_max_seq: int = 0
    topic: str = field(default_factory=lambda: unique("device-alerts"))
    session_queue: str = field(default_factory=lambda: unique("device-changes"))
    rad_queue: str = field(default_factory=lambda: unique("dur-rad"))
    sched_queue: str = field(default_factory=lambda: unique("dur-sched"))
    scheduled_for: datetime = field(default_factory=lambda: datetime.now(UTC))


async def receive_exactly_async(receiver: Any, count: int) -> list[ServiceBusReceivedMessage]:
    received: list[ServiceBusReceivedMessage] = []
    while len(received) < count:
        batch = await receiver.receive_messages(
            max_message_count=count - len(received), max_wait_time=WAIT
        )
        assert batch, f"stalled after {len(received)} of {count} messages"
        received += batch
    return received


async def _settlements(
    client: AioServiceBusClient, r: Restarted, keep_open: AsyncExitStack
) -> None:
    """Single, list and ServiceBusMessageBatch sends, then every settlement outcome."""
    async with client.get_queue_sender(r.settle_queue) as sender:
        for i in range(10):
            await sender.send_messages(ServiceBusMessage(f"s{i}", message_id=f"s{i}"))
        await sender.send_messages(
            [ServiceBusMessage(f"b{i}", message_id=f"b{i}") for i in range(30)]
        )
        batch = await sender.create_message_batch()
        for i in range(10):
            batch.add_message(ServiceBusMessage(f"c{i}", message_id=f"c{i}"))
        await sender.send_messages(batch)
    # Left open: the broker dies with s7-s9 locked by a live link.
    receiver = await keep_open.enter_async_context(
        client.get_queue_receiver(r.settle_queue, max_wait_time=WAIT)
    )
    received = await receive_exactly_async(receiver, 10)
    assert bodies(received) == [f"s{i}" for i in range(10)]
    for message in received[:4]:
        await receiver.complete_message(message)
    for message in received[4:6]:
        await receiver.dead_letter_message(message, reason="Poison", error_description="bad")
    await receiver.abandon_message(received[6])
    r.abandoned_seq = received[6].sequence_number or 0
    r.locked_seqs = [m.sequence_number or 0 for m in received[7:]]


async def _deferral(client: AioServiceBusClient, r: Restarted) -> None:
    sender = client.get_queue_sender(r.defer_queue)
    receiver = client.get_queue_receiver(r.defer_queue, max_wait_time=WAIT)
    async with sender, receiver:
        await sender.send_messages([ServiceBusMessage("d0"), ServiceBusMessage("d1")])
        d0, d1 = await receive_exactly_async(receiver, 2)
        await receiver.defer_message(d0)
        await receiver.complete_message(d1)
        r.deferred_seq = d0.sequence_number or 0


async def _dedupe(client: AioServiceBusClient, r: Restarted) -> None:
    sender = client.get_queue_sender(r.dedupe_queue)
    receiver = client.get_queue_receiver(r.dedupe_queue, max_wait_time=WAIT)
    async with sender, receiver:
        await sender.send_messages(
            [ServiceBusMessage(f"x{i}", message_id=f"x{i}") for i in range(5)]
        )
        (x0,) = await receive_exactly_async(receiver, 1)
        await receiver.complete_message(x0)
        peeked = await receiver.peek_messages(max_message_count=10)
        r.dedupe_max_seq = max(m.sequence_number or 0 for m in peeked)


async def _topic(client: AioServiceBusClient, r: Restarted, keep_open: AsyncExitStack) -> None:
    async with client.get_topic_sender(r.topic) as sender:
        for i in range(5):
            await sender.send_messages(ServiceBusMessage(f"a{i}", message_id=f"a{i}"))
        await sender.send_messages(
            [ServiceBusMessage(f"a{i}", message_id=f"a{i}") for i in range(5, 10)]
        )
    teams = await keep_open.enter_async_context(
        client.get_subscription_receiver(r.topic, "teams", max_wait_time=WAIT)
    )
    async with client.get_subscription_receiver(r.topic, "audit", max_wait_time=WAIT) as audit:
        for message in await receive_exactly_async(audit, 10):
            await audit.complete_message(message)
    alerts = await receive_exactly_async(teams, 10)
    for message in alerts[:8]:
        await teams.complete_message(message)
    await teams.dead_letter_message(alerts[8], reason="TeamsDown", error_description="503")


async def _session(client: AioServiceBusClient, r: Restarted, keep_open: AsyncExitStack) -> None:
    async with client.get_queue_sender(r.session_queue) as sender:
        await sender.send_messages(
            [ServiceBusMessage(f"e{i}", session_id="dev-1") for i in range(3)]
            + [ServiceBusMessage(f"f{i}", session_id="dev-2") for i in range(2)]
        )
    # Left open: the session lock dies with the broker, not by a clean close.
    receiver = await keep_open.enter_async_context(
        client.get_queue_receiver(r.session_queue, session_id="dev-1", max_wait_time=WAIT)
    )
    e0, _e1 = await receive_exactly_async(receiver, 2)
    await receiver.complete_message(e0)
    await receiver.session.set_state(b"cursor=1")


async def _receive_and_delete(client: AioServiceBusClient, r: Restarted) -> None:
    sender = client.get_queue_sender(r.rad_queue)
    receiver = client.get_queue_receiver(
        r.rad_queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=WAIT
    )
    async with sender, receiver:
        await sender.send_messages([ServiceBusMessage(f"r{i}") for i in range(4)])
        assert bodies(await receive_exactly_async(receiver, 2)) == ["r0", "r1"]


async def _before_the_kill(conn_str: str, r: Restarted, kill: Callable[[], None]) -> None:
    client = AioServiceBusClient.from_connection_string(conn_str, retry_total=0)
    sched_sender = client.get_queue_sender(r.sched_queue)
    async with AsyncExitStack() as keep_open:
        # Concurrently: opening an SDK handler costs ~0.5 s whatever the broker does.
        await asyncio.gather(
            _settlements(client, r, keep_open),
            _deferral(client, r),
            _dedupe(client, r),
            _topic(client, r, keep_open),
            _session(client, r, keep_open),
            _receive_and_delete(client, r),
            keep_open.enter_async_context(sched_sender),
        )
        # Last, right before the kill, so that they are still scheduled when the broker dies.
        r.scheduled_for = datetime.now(UTC) + timedelta(seconds=2)
        await sched_sender.schedule_messages(ServiceBusMessage("due"), r.scheduled_for)
        (cancelled,) = await sched_sender.schedule_messages(
            ServiceBusMessage("cancelled"), r.scheduled_for
        )
        await sched_sender.cancel_scheduled_messages(cancelled)
        kill()
        # Handlers of a dead connection cannot close cleanly; that is not under test.
        keep_open.pop_all()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), timeout=5)


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restarted]:
    process = BrokerProcess(tmp_path_factory.mktemp("journal"))
    process.start()
    try:
        r = Restarted(process.conn_str)
        asyncio.run(_before_the_kill(process.conn_str, r, process.kill))
        process.start()
        yield r
        process.close()  # a journaled broker still exits cleanly on SIGTERM
    finally:
        if process.proc is not None:
            process.proc.kill()
            process.proc.wait()


@pytest.fixture
def client(restarted: Restarted) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(restarted.conn_str) as sb_client:
        yield sb_client


def test_unsettled_messages_come_back_and_completed_ones_do_not(
    restarted: Restarted, client: ServiceBusClient
) -> None:
    with client.get_queue_receiver(restarted.settle_queue) as receiver:
        peeked = receiver.peek_messages(max_message_count=100)
    # s0-s3 completed and s4-s5 dead-lettered stay gone; in sequence order.
    expected = (
        ["s6", "s7", "s8", "s9"] + [f"b{i}" for i in range(30)] + [f"c{i}" for i in range(10)]
    )
    assert bodies(peeked) == expected
    counts = {str(m): m.delivery_count for m in peeked}
    # The abandon was journaled; the locks the kill dropped did not count as deliveries.
    assert counts["s6"] == 1
    assert {counts[b] for b in expected if b != "s6"} == {0}
    seqs = {str(m): m.sequence_number for m in peeked}
    assert seqs["s6"] == restarted.abandoned_seq
    assert [seqs[b] for b in ("s7", "s8", "s9")] == restarted.locked_seqs


def test_dead_letters_survive(restarted: Restarted, client: ServiceBusClient) -> None:
    with client.get_queue_receiver(restarted.settle_queue, sub_queue=DLQ) as dlq:
        dead = dlq.peek_messages(max_message_count=10)
    assert bodies(dead) == ["s4", "s5"]
    assert {(m.dead_letter_reason, m.dead_letter_error_description) for m in dead} == {
        ("Poison", "bad")
    }


def test_deferred_message_survives(restarted: Restarted, client: ServiceBusClient) -> None:
    with client.get_queue_receiver(restarted.defer_queue, max_wait_time=1) as receiver:
        assert bodies(receiver.peek_messages(max_message_count=10)) == ["d0"]
        assert receiver.receive_messages(max_wait_time=1) == []  # still deferred
        (deferred,) = receiver.receive_deferred_messages([restarted.deferred_seq])
        assert str(deferred) == "d0"
        receiver.complete_message(deferred)
        assert receiver.peek_messages(max_message_count=10) == []


def test_duplicate_detection_survives(restarted: Restarted, client: ServiceBusClient) -> None:
    with client.get_queue_sender(restarted.dedupe_queue) as sender:
        # x0 was completed, x1 is still there: both ids are inside the detection window.
        sender.send_messages(
            [
                ServiceBusMessage("x0 again", message_id="x0"),
                ServiceBusMessage("x1 again", message_id="x1"),
                ServiceBusMessage("new", message_id="new"),
            ]
        )
    with client.get_queue_receiver(restarted.dedupe_queue) as receiver:
        peeked = receiver.peek_messages(max_message_count=10)
    assert bodies(peeked) == ["x1", "x2", "x3", "x4", "new"]
    # Sequence numbers are not handed out twice after a restart.
    assert (peeked[-1].sequence_number or 0) > restarted.dedupe_max_seq


async def test_topic_subscriptions_survive(restarted: Restarted) -> None:
    async with AioServiceBusClient.from_connection_string(restarted.conn_str) as client:
        topic = restarted.topic
        sender = client.get_topic_sender(topic)
        teams = client.get_subscription_receiver(topic, "teams")
        teams_dlq = client.get_subscription_receiver(topic, "teams", sub_queue=DLQ)
        remediation = client.get_subscription_receiver(topic, "remediation")
        audit = client.get_subscription_receiver(topic, "audit")
        handlers = (sender, teams, teams_dlq, remediation, audit)
        await asyncio.gather(*(h.__aenter__() for h in handlers))
        try:
            await sender.send_messages(ServiceBusMessage("a3 again", message_id="a3"))  # duplicate
            assert bodies(await teams.peek_messages(max_message_count=20)) == ["a9"]
            (dead,) = await teams_dlq.peek_messages(max_message_count=20)
            assert (str(dead), dead.dead_letter_reason) == ("a8", "TeamsDown")
            assert bodies(await remediation.peek_messages(max_message_count=20)) == [
                f"a{i}" for i in range(10)
            ]
            assert await audit.peek_messages(max_message_count=20) == []
        finally:
            await asyncio.gather(*(h.close() for h in handlers))


def test_session_messages_and_state_survive(restarted: Restarted, client: ServiceBusClient) -> None:
    with client.get_queue_receiver(
        restarted.session_queue, session_id="dev-1", max_wait_time=WAIT
    ) as receiver:
        assert receiver.session.get_state() == b"cursor=1"
        # e1 was locked by the session when the broker died: available again, count kept.
        e1, e2 = receive_exactly(receiver, 2)
        assert [(str(m), m.delivery_count) for m in (e1, e2)] == [("e1", 0), ("e2", 0)]
        for message in (e1, e2):
            receiver.complete_message(message)
    with client.get_queue_receiver(
        restarted.session_queue, session_id="dev-2", max_wait_time=WAIT
    ) as receiver:
        assert bodies(receiver.peek_messages(max_message_count=10)) == ["f0", "f1"]


def test_received_and_deleted_messages_stay_deleted(
    restarted: Restarted, client: ServiceBusClient
) -> None:
    with client.get_queue_receiver(restarted.rad_queue) as receiver:
        assert bodies(receiver.peek_messages(max_message_count=10)) == ["r2", "r3"]


def test_scheduled_message_survives_and_cancelled_one_stays_cancelled(
    restarted: Restarted, client: ServiceBusClient
) -> None:
    with client.get_queue_receiver(restarted.sched_queue, max_wait_time=WAIT) as receiver:
        (due,) = receive_exactly(receiver, 1)
        assert str(due) == "due"
        assert due.enqueued_time_utc is not None
        assert due.enqueued_time_utc >= restarted.scheduled_for - timedelta(milliseconds=1)
        receiver.complete_message(due)
        # Both were due at the same moment: a resurrected "cancelled" would be here by now.
        assert receiver.peek_messages(max_message_count=10) == []


# ------------------------------------------------------------------------------ under load


def test_sigkill_during_sends_loses_no_acknowledged_batch(broker: BrokerProcess) -> None:
    queue = unique("dur-stream")
    acked: list[int] = []
    failed: list[int] = []
    enough = threading.Event()

    def send() -> None:
        with (
            ServiceBusClient.from_connection_string(broker.conn_str, retry_total=0) as client,
            client.get_queue_sender(queue) as sender,
        ):
            for batch in range(10_000):
                try:
                    sender.send_messages(
                        [
                            ServiceBusMessage(f"{batch}:{i}", message_id=f"{batch}:{i}")
                            for i in range(50)
                        ]
                    )
                except Exception:  # whatever the SDK raises once the broker is gone
                    failed.append(batch)
                    return
                acked.append(batch)
                if len(acked) == 20:
                    enough.set()

    sender = threading.Thread(target=send)
    sender.start()
    assert enough.wait(PROGRESS_TIMEOUT), "the sender made no progress"
    broker.kill()
    sender.join(PROGRESS_TIMEOUT)
    assert not sender.is_alive()
    broker.start()
    with ServiceBusClient.from_connection_string(broker.conn_str) as client:
        stored = drain(client, queue)
    assert len(stored) == len(set(stored))
    by_batch: dict[int, int] = {}
    for body in stored:
        by_batch[int(body.split(":")[0])] = by_batch.get(int(body.split(":")[0]), 0) + 1
    # Every acknowledged batch is there in full; the one in flight, if any, whole or not at all.
    assert set(acked) <= set(by_batch)
    assert set(by_batch) <= set(acked) | set(failed)
    assert set(by_batch.values()) == {50}


def test_sigkill_during_completes_resurrects_nothing_completed(broker: BrokerProcess) -> None:
    queue = unique("dur-drain")
    sent = [f"m{i}" for i in range(400)]
    with (
        ServiceBusClient.from_connection_string(broker.conn_str) as client,
        client.get_queue_sender(queue) as sender,
    ):
        for start in range(0, len(sent), 100):
            sender.send_messages([ServiceBusMessage(b) for b in sent[start : start + 100]])
    completed: list[str] = []
    enough, killed = threading.Event(), threading.Event()

    def consume() -> None:
        with (
            ServiceBusClient.from_connection_string(broker.conn_str, retry_total=0) as client,
            client.get_queue_receiver(queue, max_wait_time=WAIT) as receiver,
        ):
            try:
                while True:
                    messages = receiver.receive_messages(max_message_count=20, max_wait_time=WAIT)
                    if not messages and killed.is_set():
                        return  # the SDK may report a dead link as "nothing to receive"
                    for message in messages:
                        receiver.complete_message(message)
                        completed.append(str(message))
                        if len(completed) == 100:
                            enough.set()
            except Exception:  # whatever the SDK raises once the broker is gone
                return

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert enough.wait(PROGRESS_TIMEOUT), "the receiver made no progress"
    broker.kill()
    killed.set()
    consumer.join(PROGRESS_TIMEOUT)
    assert not consumer.is_alive()
    assert len(completed) < len(sent)  # the kill did land mid-stream
    broker.start()
    with ServiceBusClient.from_connection_string(broker.conn_str) as client:
        remaining = drain(client, queue)
    assert not set(remaining) & set(completed)  # nothing completed came back
    assert sorted(remaining + completed) == sorted(sent)  # and nothing was lost


# ------------------------------------------------------------------------------ the journal itself


def test_second_broker_on_the_same_journal_refuses_to_start(broker: BrokerProcess) -> None:
    args = broker.args()
    args[args.index("--port") + 1] = str(free_port())
    result = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, timeout=60, check=False)
    assert result.returncode == 2
    assert b"database is locked" in result.stderr


def test_one_transaction_per_send_batch(tmp_path: Path) -> None:
    port = free_port()
    server = Server(parse_config(_config()), "127.0.0.1", port, tmp_path / "journal.sqlite")
    assert isinstance(server.journal, SqliteJournal)
    journal = server.journal
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    try:
        with (
            ServiceBusClient.from_connection_string(connection_string(port)) as client,
            client.get_queue_sender(unique("dur-batch")) as sender,
        ):
            # Attaching wrote nothing: there was nothing durable to write.
            assert journal.commits == 0
            sender.send_messages(
                [ServiceBusMessage(f"m{i}", message_id=f"m{i}") for i in range(100)]
            )
            assert journal.commits == 1
            sender.send_messages([ServiceBusMessage(f"n{i}") for i in range(100)])
            assert journal.commits == 2
    finally:
        server.stop()
        loop.join(15)
    assert not loop.is_alive()


@pytest.mark.parametrize(
    "message",
    [
        Message(body="plain"),
        Message(
            id="id-1",
            body=b"\x00\x01bytes",
            durable=True,
            priority=7,
            ttl=30.5,
            first_acquirer=True,
            subject="s",
            group_id="session-1",
            properties={"i": 7, "s": "v", "f": 0.5, "b": True},
            annotations={"x-custom": "kept", "x-opt-scheduled-enqueue-time": 1_900_000_000_000},
        ),
        Message(id=uuid.uuid4(), body=["a", 1], correlation_id=42),
    ],
)
def test_stored_form_round_trips(message: Message) -> None:
    content = parse_message(bytes(message.encode()))
    assert parse_message(encode_stored(content)) == content
