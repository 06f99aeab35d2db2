"""Service Bus triggers: receive with the real SDK, invoke, settle like the Functions host.

Settlement (autoCompleteMessages=true, the host default): the function returns -> complete;
the function raises -> abandon, so the broker redelivers and, past the entity's max
delivery count, dead-letters the message (MaxDeliveryCountExceeded).

Concurrency: a plain entity runs up to maxConcurrentCalls invocations at once off one
receiver, asking the broker only for as many messages as there are free slots. A
session-enabled entity runs maxConcurrentSessions workers; each accepts the next available
session, processes its messages strictly one after another, and releases the session once
it has been idle for sessionIdleTimeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from azure.functions.servicebus import ServiceBusMessage
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusReceivedMessage
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient, ServiceBusReceiver
from azure.servicebus.exceptions import (
    MessageLockLostError,
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

from local.devhost.connections import ClientPool, ServiceBusConnection
from local.devhost.functions import FunctionSpec
from local.devhost.invoke import InvocationResult, Invoker, log_invocation
from local.devhost.sbmessage import to_functions_message
from local.devhost.settings import ServiceBusOptions, resolve_setting_expression

log = logging.getLogger("devhost")

# Longest a receive call blocks, so shutdown and slot changes are noticed promptly.
POLL_SECONDS = 1.0
# How long one attempt to lock the next available session may wait.
ACCEPT_WAIT_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Entity:
    """The queue, or topic subscription, a trigger listens on."""

    queue_name: str | None = None
    topic_name: str | None = None
    subscription_name: str | None = None
    sessions: bool = False

    def describe(self) -> str:
        where = (
            f"queue {self.queue_name}"
            if self.queue_name
            else f"topic {self.topic_name}/subscriptions/{self.subscription_name}"
        )
        return where + (" (sessions)" if self.sessions else "")


def entity_for(spec: FunctionSpec, environ: Mapping[str, str] | None = None) -> Entity:
    """The trigger's entity with %SETTING% expressions resolved (raises SettingError)."""
    props = spec.trigger.props

    def setting(key: str) -> str | None:
        value = props.get(key)
        return resolve_setting_expression(str(value), environ) if value else None

    queue = setting("queueName")
    topic = setting("topicName")
    subscription = setting("subscriptionName")
    if not queue and not (topic and subscription):
        raise ValueError("trigger names neither queueName nor topicName+subscriptionName")
    return Entity(
        queue_name=queue,
        topic_name=None if queue else topic,
        subscription_name=None if queue else subscription,
        sessions=bool(props.get("isSessionsEnabled")),
    )


class _Backoff:
    """Exponential reconnect delay with jitter, reset after a successful receive."""

    def __init__(self) -> None:
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next(self) -> float:
        delay = min(BACKOFF_MAX_SECONDS, 2.0**self._attempt)
        self._attempt += 1
        return delay * random.uniform(0.8, 1.2)


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


async def _until_stopped(coro: Coroutine[Any, Any, Any], stopping: asyncio.Event) -> bool:
    """Await `coro` unless `stopping` is set first (then cancel it); True when it finished."""
    work = asyncio.ensure_future(coro)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        done, _ = await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # Our caller gave up (e.g. a pre-accepted session at shutdown): take the work down too,
        # and collect its outcome so asyncio does not report it as never retrieved.
        work.cancel()
        work.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise
    finally:
        stop.cancel()
    if work in done:
        work.result()  # re-raise the coroutine's failure
        return True
    work.cancel()
    with contextlib.suppress(BaseException):
        await work
    return False


class _Slots:
    """Free invocation slots for a plain (non-session) entity."""

    def __init__(self, capacity: int) -> None:
        self.free = capacity
        self._available = asyncio.Event()
        self._available.set()

    def take(self) -> None:
        self.free -= 1
        if self.free == 0:
            self._available.clear()

    def give(self) -> None:
        self.free += 1
        self._available.set()

    async def wait(self, stopping: asyncio.Event) -> int:
        while self.free == 0 and not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._available.wait(), timeout=POLL_SECONDS)
        return self.free


def _is_no_session(exc: BaseException) -> bool:
    """Errors that only mean "no unlocked session had messages in time"."""
    return isinstance(exc, OperationTimeoutError | SessionCannotBeLockedError)


class ServiceBusRunner:
    """Runs one Service Bus triggered function until stopped."""

    def __init__(
        self,
        spec: FunctionSpec,
        entity: Entity,
        connection: ServiceBusConnection,
        pool: ClientPool,
        invoker: Invoker,
        options: ServiceBusOptions,
    ) -> None:
        self.spec = spec
        self.entity = entity
        self.connection = connection
        self._pool = pool
        self._invoker = invoker
        self._options = options
        auto = spec.trigger.props.get("autoCompleteMessages")
        self._auto_complete = options.auto_complete_messages if auto is None else bool(auto)
        self._renewer: AutoLockRenewer | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._inflight: set[asyncio.Task[None]] = set()
        self._connected_once = False
        self._failing = False
        # True once a receiver has attached (or a session accept attempt got an answer).
        self.listening = False

    def describe(self) -> str:
        limit = (
            f"{self._options.max_concurrent_sessions} sessions at a time"
            if self.entity.sessions
            else f"{self._options.max_concurrent_calls} concurrent calls"
        )
        return (
            f"serviceBusTrigger {self.entity.describe()}, {limit}, via {self.connection.describe()}"
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        if self._options.max_auto_lock_renewal_duration > 0:
            self._renewer = AutoLockRenewer(
                max_lock_renewal_duration=self._options.max_auto_lock_renewal_duration,
                on_lock_renew_failure=self._on_renew_failure,
            )
        try:
            if self.entity.sessions:
                workers = [
                    asyncio.create_task(
                        self._session_worker(stopping), name=f"{self.spec.name}-s{i}"
                    )
                    for i in range(self._options.max_concurrent_sessions)
                ]
                await asyncio.gather(*workers)
            else:
                await self._plain_loop(stopping)
        finally:
            if self._closing:
                await asyncio.gather(*self._closing, return_exceptions=True)
            if self._renewer is not None:
                await self._renewer.close()

    async def _on_renew_failure(self, renewable: Any, error: Exception | None) -> None:
        log.warning("%s: lock renewal failed for %r: %s", self.spec.name, renewable, error)

    def _receiver(self, client: ServiceBusClient, **kwargs: Any) -> ServiceBusReceiver:
        kwargs.setdefault("prefetch_count", self._options.prefetch_count)
        if self.entity.queue_name:
            return client.get_queue_receiver(self.entity.queue_name, **kwargs)
        assert self.entity.topic_name and self.entity.subscription_name
        return client.get_subscription_receiver(
            self.entity.topic_name, self.entity.subscription_name, **kwargs
        )

    def _connected(self, backoff: _Backoff) -> None:
        backoff.reset()
        if not self._connected_once or self._failing:
            log.info("%s: listening on %s", self.spec.name, self.entity.describe())
        self._connected_once = True
        self._failing = False
        self.listening = True

    async def _failed(self, exc: BaseException, backoff: _Backoff, stopping: asyncio.Event) -> None:
        delay = backoff.next()
        # First failure of a streak at WARNING, the rest at DEBUG: a down broker should not flood.
        level = logging.DEBUG if self._failing else logging.WARNING
        log.log(
            level,
            "%s: %s on %s: %s; retrying in %.1f s",
            self.spec.name,
            type(exc).__name__,
            self.entity.describe(),
            exc,
            delay,
        )
        self._failing = True
        self.listening = False
        await _sleep_unless(stopping, delay)

    # -- plain entities ----------------------------------------------------------------

    async def _plain_loop(self, stopping: asyncio.Event) -> None:
        slots = _Slots(self._options.max_concurrent_calls)
        backoff = _Backoff()
        while not stopping.is_set():
            receiver: ServiceBusReceiver | None = None
            try:
                receiver = self._receiver(self._pool.get(self.connection))
                # The SDK retries a failing open for several seconds; do not hold up shutdown.
                if not await _until_stopped(receiver.__aenter__(), stopping):
                    break
                self._connected(backoff)
                try:
                    while not stopping.is_set():
                        free = await slots.wait(stopping)
                        if stopping.is_set():
                            break
                        messages = await receiver.receive_messages(
                            max_message_count=free, max_wait_time=POLL_SECONDS
                        )
                        for message in messages:
                            slots.take()
                            task = asyncio.create_task(
                                self._process_plain(receiver, message, slots)
                            )
                            self._inflight.add(task)
                            task.add_done_callback(self._inflight.discard)
                finally:
                    # Settlement goes through this receiver: let in-flight calls finish first.
                    if self._inflight:
                        await asyncio.gather(*self._inflight, return_exceptions=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if stopping.is_set():
                    break
                await self._failed(exc, backoff, stopping)
            finally:
                if receiver is not None:
                    with contextlib.suppress(Exception):
                        await receiver.close()

    async def _process_plain(
        self, receiver: ServiceBusReceiver, message: ServiceBusReceivedMessage, slots: _Slots
    ) -> None:
        try:
            if self._renewer is not None and message.locked_until_utc is not None:
                # Keeps the lock while a long invocation runs (maxAutoLockRenewalDuration).
                self._renewer.register(receiver, message)
            await self._process(receiver, message, locked_until=None)
        except Exception:  # never let one message kill the pump
            log.exception("%s: unexpected error handling a message", self.spec.name)
        finally:
            slots.give()

    # -- session entities --------------------------------------------------------------

    async def _session_worker(self, stopping: asyncio.Event) -> None:
        """Lock a session, drain it, release it; repeat.

        The Python SDK takes about half a second to open a session receiver (it reads one frame
        per 50 ms poll during the handshake), far longer than the .NET SDK inside the real host.
        So the next session is accepted while the current one drains, and a drained receiver is
        closed in the background: the worker's time goes to invocations, not to handshakes.
        """
        backoff = _Backoff()
        upcoming: asyncio.Task[ServiceBusReceiver | None] | None = None
        try:
            while not stopping.is_set():
                if upcoming is None:
                    upcoming = asyncio.create_task(self._accept(stopping, backoff))
                receiver = await upcoming
                upcoming = None
                if receiver is None:
                    continue
                upcoming = asyncio.create_task(self._accept(stopping, backoff))
                try:
                    await self._drain_session(receiver, stopping)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if stopping.is_set():
                        break
                    if not _is_no_session(exc):
                        await self._failed(exc, backoff, stopping)
                finally:
                    self._close_later(receiver)
        finally:
            if upcoming is not None:
                upcoming.cancel()
                with contextlib.suppress(BaseException):
                    leftover = await upcoming
                    if leftover is not None:
                        self._close_later(leftover)

    async def _accept(
        self, stopping: asyncio.Event, backoff: _Backoff
    ) -> ServiceBusReceiver | None:
        """A receiver holding the next available session's lock, or None (none free, stopping,
        or a connection problem already logged and backed off)."""
        receiver = self._receiver(
            self._pool.get(self.connection),
            session_id=NEXT_AVAILABLE_SESSION,
            max_wait_time=ACCEPT_WAIT_SECONDS,
        )
        try:
            # Opening the receiver is what locks the next available session.
            if not await _until_stopped(receiver.__aenter__(), stopping):
                self._close_later(receiver)
                return None
            self._connected(backoff)
            session = receiver.session
            if session.session_id == NEXT_AVAILABLE_SESSION:
                # The broker answered the accept without a session: none was free in time.
                self._close_later(receiver)
                return None
            # The session lock (not each message's) is what a session receiver renews;
            # registered here rather than via the receiver so a lock-less answer is harmless.
            if self._renewer is not None and session.locked_until_utc is not None:
                self._renewer.register(receiver, session)
            return receiver
        except asyncio.CancelledError:
            self._close_later(receiver)
            raise
        except Exception as exc:
            self._close_later(receiver)
            if stopping.is_set():
                return None
            if _is_no_session(exc):
                # Nothing to do right now; a successful accept attempt means we are connected.
                self._connected(backoff)
                return None
            await self._failed(exc, backoff, stopping)
            return None

    def _close_later(self, receiver: ServiceBusReceiver) -> None:
        """Close a drained session's receiver without waiting for it.

        The Python SDK's close lingers (about 0.3 s, its keep-alive loop), while the session is
        released as soon as the link detaches; the worker moves on to the next session meanwhile.
        """

        async def close() -> None:
            with contextlib.suppress(Exception):
                await receiver.close()

        task = asyncio.create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _drain_session(self, receiver: ServiceBusReceiver, stopping: asyncio.Event) -> None:
        """Process the locked session's messages in order until it is idle (or we stop)."""
        session = receiver.session
        idle_timeout = self._options.session_idle_timeout
        idle_deadline = time.monotonic() + idle_timeout
        log.debug("%s: locked session %r", self.spec.name, session.session_id)
        while not stopping.is_set():
            remaining = idle_deadline - time.monotonic()
            if remaining <= 0:
                break
            messages = await receiver.receive_messages(
                max_message_count=1, max_wait_time=min(POLL_SECONDS, remaining)
            )
            for message in messages:
                # One at a time, in order: the session's guarantee.
                await self._process(receiver, message, locked_until=session.locked_until_utc)
            if messages:
                idle_deadline = time.monotonic() + idle_timeout
        log.debug("%s: released session %r", self.spec.name, session.session_id)

    # -- one message -------------------------------------------------------------------

    def _trigger_value(self, message: ServiceBusMessage) -> Any:
        """What the function's trigger parameter receives, by its annotation (like the worker)."""
        annotation = self.spec.annotations.get(self.spec.trigger_arg)
        if annotation in (str, "str"):
            return message.get_body().decode("utf-8")
        if annotation in (bytes, "bytes"):
            return message.get_body()
        return message

    async def _process(
        self,
        receiver: ServiceBusReceiver,
        message: ServiceBusReceivedMessage,
        *,
        locked_until: Any,
    ) -> None:
        converted = to_functions_message(
            message, locked_until=locked_until, function_name=self.spec.name
        )
        trace_parent = str(converted.application_properties.get("Diagnostic-Id") or "")
        result = await self._invoker.invoke(
            self.spec, self._trigger_value(converted), trace_parent=trace_parent
        )
        outcome = await self._settle(receiver, message, result)
        detail = f"servicebus {self.entity.describe()} id={converted.message_id}"
        if converted.session_id:
            detail += f" session={converted.session_id}"
        detail += f" delivery={converted.delivery_count}"
        log_invocation(self.spec, detail, result, outcome)

    async def _settle(
        self,
        receiver: ServiceBusReceiver,
        message: ServiceBusReceivedMessage,
        result: InvocationResult,
    ) -> str:
        try:
            if result.succeeded:
                if not self._auto_complete:
                    return "left unsettled (autoCompleteMessages=false)"
                await receiver.complete_message(message)
                return "completed"
            await receiver.abandon_message(message)
            return "abandoned"
        except (MessageLockLostError, SessionLockLostError) as exc:
            log.warning("%s: lock lost before settlement: %s", self.spec.name, exc)
            return "lock lost (broker will redeliver)"
        except ServiceBusError as exc:
            log.warning("%s: settlement failed: %s", self.spec.name, exc)
            return f"settlement failed ({type(exc).__name__})"
