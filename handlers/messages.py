"""What every Service Bus trigger does with a message that fails: say so, count it, then raise.

Raising abandons the message; Service Bus dead-letters it after the entity's max delivery count.
The reason travels in the log event, keyed by message id (docs/reliability.md), and every failed
attempt is counted in ProcessingFailures so that /api/health turns degraded when failures pile
up (shared/adapters/failure_log.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import azure.functions as func
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.servicebus.exceptions import OperationTimeoutError, ServiceBusConnectionError

from shared import logs
from shared.runtime import Runtime, current

P = ParamSpec("P")
R = TypeVar("R")


def log_poison(log: logging.Logger, msg: func.ServiceBusMessage, reason: str) -> None:
    logs.event(
        log,
        "message_poison",
        level=logging.ERROR,
        message_id=msg.message_id,
        delivery_count=msg.delivery_count,
        reason=reason,
    )


async def record_failure(
    rt: Runtime, trigger: str, msg: func.ServiceBusMessage, exc: BaseException
) -> None:
    """Count one failed attempt; never fails the caller (storage may be what is down)."""
    try:
        failures = await rt.failure_log()
        await failures.record(
            at=datetime.now(UTC),
            trigger=trigger,
            error=f"{type(exc).__name__}: {exc}",
            device_id=msg.session_id or "",
            message_id=msg.message_id or "",
            delivery_count=msg.delivery_count or 0,
        )
    except Exception as record_exc:
        logs.event(
            logging.getLogger("devicemon.health"),
            "failure_not_recorded",
            level=logging.WARNING,
            trigger=trigger,
            error=type(record_exc).__name__,
        )


# Our own Azure dependencies (Table storage, Service Bus) could not be reached. Abandoning at once
# makes Service Bus redeliver at once (the Functions host does the same, and its retry policies
# do not cover Service Bus triggers), so a storage outage of a few seconds burned all 10
# deliveries of every alert in flight and dead-lettered them (seen with `make chaos`). Holding
# the message a little before the abandon spreads the deliveries over about a minute of outage.
UNREACHABLE = (
    ServiceRequestError,
    ServiceResponseError,
    ServiceBusConnectionError,
    OperationTimeoutError,
)
UNREACHABLE_BACKOFF_SECONDS = 1.0
# Under the queue's 30 s lock, so the abandon still finds its lock.
UNREACHABLE_BACKOFF_CAP_SECONDS = 10.0


def unreachable(exc: BaseException) -> bool:
    """Whether `exc`, or anything it was raised from, says a dependency could not be reached."""
    seen: set[int] = set()
    current_exc: BaseException | None = exc
    while current_exc is not None and id(current_exc) not in seen:
        if isinstance(current_exc, UNREACHABLE):
            return True
        seen.add(id(current_exc))
        current_exc = current_exc.__cause__ or current_exc.__context__
    return False


def unreachable_backoff(delivery_count: int) -> float:
    """Seconds to hold a message whose dependency was unreachable: 1, 2, 4, 8, 10, 10, ..."""
    exponent = max(0, min(delivery_count - 1, 10))
    return min(UNREACHABLE_BACKOFF_CAP_SECONDS, UNREACHABLE_BACKOFF_SECONDS * 2**exponent)


def counts_failures(
    trigger: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate a trigger's `handle(msg, runtime=None)` so each failed attempt is counted."""

    def decorate(handle: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(handle)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await handle(*args, **kwargs)
            except Exception as exc:
                msg = args[0] if args else kwargs["msg"]
                runtime = kwargs.get("runtime") or (args[1] if len(args) > 1 else None)
                assert isinstance(msg, func.ServiceBusMessage)
                rt = runtime if isinstance(runtime, Runtime) else current()
                await record_failure(rt, trigger, msg, exc)
                if unreachable(exc):
                    await asyncio.sleep(unreachable_backoff(msg.delivery_count or 1))
                raise

        return wrapper

    return decorate
