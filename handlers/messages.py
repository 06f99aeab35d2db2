"""What every Service Bus trigger does with a message that fails: say so, count it, then raise.

Raising abandons the message; Service Bus dead-letters it after the entity's max delivery count.
The reason travels in the log event, keyed by message id (docs/reliability.md), and every failed
attempt is counted in ProcessingFailures so that /api/health turns degraded when failures pile
up (shared/failure_log.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import azure.functions as func

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
                raise

        return wrapper

    return decorate
