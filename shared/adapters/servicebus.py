"""Service Bus adapter: the change queue and the alert topic, through the azure-servicebus SDK.

Clients are long-lived (connecting and the CBS handshake cost ~0.5 s); build one per process with
`make_client` and inject it. Light enough for the webhook's cold path: no msgraph here.

An SDK sender is not safe for concurrent use: two coroutines that send through one sender race
in its link set-up and fail with "'NoneType' object has no attribute 'client_ready_async'"
(azure-sdk-for-python #36334, #35618). Every send here therefore goes through a `SenderPool`:
a few senders per entity, each lent to one coroutine at a time (docs/reliability.md says why
a pool and not a lock or a sender per invocation, with the figures).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError

from shared.core.changes import DeviceChange
from shared.core.commands import COMMAND_KIND, CONTROL_SESSION, KIND_PROPERTY, Command
from shared.core.events import CONTENT_TYPE, application_properties
from shared.settings import Settings, SettingsError

log = logging.getLogger("devicemon.servicebus")

# Graph gives the webhook 3 s: fail fast and let Graph (or the queue) redeliver, rather than
# spend the budget on the SDK's default back-off (about 1.7 s per attempt on a refused connect).
_RETRY: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.2, "retry_backoff_max": 1.0}


def make_client(settings: Settings) -> ServiceBusClient:
    if settings.service_bus_connection_string:
        return ServiceBusClient.from_connection_string(
            settings.service_bus_connection_string, **_RETRY
        )
    if settings.service_bus_namespace:
        from shared.adapters.identity import credential

        return ServiceBusClient(
            settings.service_bus_namespace, credential(settings, aio=True), **_RETRY
        )
    raise SettingsError(
        "Service Bus is not configured: set ServiceBusConnection (connection string, local) or "
        "ServiceBusConnection__fullyQualifiedNamespace (managed identity, Azure)"
    )


def change_message(change: DeviceChange) -> ServiceBusMessage:
    return ServiceBusMessage(
        change.to_json(),
        message_id=change.message_id,
        session_id=change.device_id,
        correlation_id=change.correlation_id,
        content_type="application/json",
        subject=change.change_type,
        application_properties={"source": change.source.value},
    )


def command_message(command: Command) -> ServiceBusMessage:
    """A control command on `device-changes`, in the control session (shared/core/commands.py)."""
    return ServiceBusMessage(
        command.to_json(),
        message_id=command.message_id(),
        session_id=CONTROL_SESSION,
        content_type="application/json",
        subject=command.name,
        application_properties={KIND_PROPERTY: COMMAND_KIND},
    )


async def send_batched(sender: ServiceBusSender, messages: Iterable[ServiceBusMessage]) -> int:
    """Send everything in as few batches as the entity's size limit allows; returns the count.

    Returns only after the broker accepted every batch: a caller may then acknowledge upstream.
    """
    sent = 0
    batch = await sender.create_message_batch()
    for message in messages:
        try:
            batch.add_message(message)
        except MessageSizeExceededError:
            if len(batch) == 0:
                raise
            await sender.send_messages(batch)
            sent += len(batch)
            batch = await sender.create_message_batch()
            batch.add_message(message)
    if len(batch):
        await sender.send_messages(batch)
        sent += len(batch)
    return sent


class SendTimeout(TimeoutError):
    """The broker did not accept a send within its bound; nothing may be acknowledged upstream."""


class SenderPool:
    """Up to `size` senders for one entity, each used by one coroutine at a time.

    A sender is opened on first need and kept; one that failed, timed out or was cancelled
    mid-send is closed and dropped, because its link state is unknown (reusing it would fail
    every later send the same way), and the next borrower opens a fresh one. `timeout` bounds
    the whole borrow-and-send, link set-up included: a frozen broker must not hold a webhook
    past Graph's 3 s or a processor past its lock.
    """

    def __init__(
        self, open_sender: Callable[[], ServiceBusSender], *, size: int, timeout: float
    ) -> None:
        if size < 1:
            raise ValueError("a sender pool needs at least one sender")
        self._open_sender = open_sender
        self._size = size
        self.timeout = timeout
        self._idle: list[ServiceBusSender] = []
        self._lent = 0
        self._available: asyncio.Condition | None = None
        self._discarding: set[asyncio.Task[None]] = set()

    @property
    def open_senders(self) -> int:
        return len(self._idle) + self._lent

    def _condition(self) -> asyncio.Condition:
        # Created on first use so that it belongs to the event loop the invocations run on.
        if self._available is None:
            self._available = asyncio.Condition()
        return self._available

    @asynccontextmanager
    async def sender(self) -> AsyncIterator[ServiceBusSender]:
        available = self._condition()
        async with available:
            await available.wait_for(lambda: bool(self._idle) or self._lent < self._size)
            sender = self._idle.pop() if self._idle else self._open_sender()
            self._lent += 1
        healthy = False
        try:
            yield sender
            healthy = True
        finally:
            async with available:
                self._lent -= 1
                if healthy:
                    self._idle.append(sender)
                available.notify()
            if not healthy:
                self._discard(sender)

    async def run(
        self, send: Callable[[ServiceBusSender], Any], *, within: float | None = None
    ) -> Any:
        """Borrow a sender, await `send(sender)` within `within` s (default: the pool's bound)."""
        bound = self.timeout if within is None else within
        try:
            async with asyncio.timeout(bound):
                async with self.sender() as sender:
                    return await send(sender)
        except TimeoutError:
            raise SendTimeout(f"Service Bus did not accept the send within {bound} s") from None

    def _discard(self, sender: ServiceBusSender) -> None:
        # Closing talks to the broker, which may be the thing that is down: do it in the
        # background, bounded, so the caller's error path is as fast as its success path.
        async def close() -> None:
            try:
                async with asyncio.timeout(5):
                    await sender.close()
            except Exception as exc:  # the sender is being dropped because it is broken
                log.debug("closing a failed sender: %s", type(exc).__name__)

        task = asyncio.get_running_loop().create_task(close())
        self._discarding.add(task)
        task.add_done_callback(self._discarding.discard)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for sender in idle:
            await sender.close()
        if self._discarding:
            await asyncio.gather(*self._discarding, return_exceptions=True)


def queue_senders(client: ServiceBusClient, queue: str, *, size: int, timeout: float) -> SenderPool:
    return SenderPool(lambda: client.get_queue_sender(queue), size=size, timeout=timeout)


def topic_senders(client: ServiceBusClient, topic: str, *, size: int, timeout: float) -> SenderPool:
    return SenderPool(lambda: client.get_topic_sender(topic), size=size, timeout=timeout)


class ChangeQueue:
    """Sends device changes to `device-changes`, one session per device.

    `timeout` bounds each send (None: the pool's own bound). The HTTP routes use a queue with a
    short bound (Graph allows 3 s, then counts the endpoint slow); the delta sync shares the
    same senders with a longer one.
    """

    def __init__(self, pool: SenderPool, *, timeout: float | None = None) -> None:
        self._pool = pool
        self._timeout = timeout

    def with_timeout(self, timeout: float | None) -> ChangeQueue:
        return ChangeQueue(self._pool, timeout=timeout)

    async def send(self, changes: Iterable[DeviceChange]) -> int:
        messages = [change_message(c) for c in changes]
        return int(
            await self._pool.run(
                lambda sender: send_batched(sender, messages), within=self._timeout
            )
        )

    async def schedule(self, change: DeviceChange, at: datetime) -> None:
        """Enqueue `change` to become visible at `at` (Service Bus scheduled messages)."""
        message = change_message(change)
        await self._pool.run(
            lambda sender: sender.schedule_messages(message, at), within=self._timeout
        )

    async def schedule_all(self, changes: Sequence[DeviceChange], at: datetime) -> int:
        """Enqueue `changes` to become visible at `at`, in one scheduling request."""
        messages = [change_message(c) for c in changes]
        if messages:
            await self._pool.run(
                lambda sender: sender.schedule_messages(messages, at), within=self._timeout
            )
        return len(messages)

    async def send_commands(self, commands: Iterable[Command]) -> int:
        messages = [command_message(c) for c in commands]
        return int(
            await self._pool.run(
                lambda sender: send_batched(sender, messages), within=self._timeout
            )
        )

    async def close(self) -> None:
        await self._pool.close()


class AlertPublisher:
    """Publishes alert CloudEvents to `device-alerts`; the event id is the message id, so the
    topic's duplicate detection turns a republished alert into a no-op."""

    def __init__(self, pool: SenderPool) -> None:
        self._pool = pool

    async def publish(self, alert: dict[str, Any]) -> None:
        message = ServiceBusMessage(
            json.dumps(alert, separators=(",", ":")),
            message_id=alert["id"],
            correlation_id=alert["data"]["detection"]["correlationId"] or None,
            content_type=CONTENT_TYPE,
            subject=alert["subject"],
            application_properties=application_properties(alert),  # type: ignore[arg-type]
        )
        await self._pool.run(lambda sender: sender.send_messages(message))

    async def close(self) -> None:
        await self._pool.close()
