"""Service Bus trigger on `device-changes` (sessions: one device at a time, in order).

Returning completes the message; raising abandons it, and Service Bus dead-letters it after the
queue's max delivery count. A message that can never be processed is logged with its reason on
every attempt (see docs/reliability.md for why the reason travels in logs, not the DLQ).
"""

from __future__ import annotations

import logging

import azure.functions as func

from handlers.messages import counts_failures, log_poison
from shared import logs
from shared.core.changes import ChangeMessageError, DeviceChange
from shared.core.commands import is_command
from shared.processing.pipeline import Outcome
from shared.runtime import Runtime, current

log = logging.getLogger("devicemon.processor")


class PoisonMessage(Exception):
    """The message itself is unusable; retrying will not help."""


def parse(msg: func.ServiceBusMessage) -> DeviceChange:
    try:
        change = DeviceChange.from_json(msg.get_body())
    except ChangeMessageError as exc:
        raise PoisonMessage(str(exc)) from exc
    if msg.session_id and msg.session_id != change.device_id:
        raise PoisonMessage(
            f"session id {msg.session_id!r} does not match device {change.device_id!r}"
        )
    return change


@counts_failures("processor")
async def handle(msg: func.ServiceBusMessage, runtime: Runtime | None = None) -> Outcome | None:
    if is_command(msg.application_properties):
        from handlers import upkeep

        await upkeep.run_command(msg.get_body(), runtime)
        return None
    try:
        change = parse(msg)
    except PoisonMessage as exc:
        log_poison(log, msg, str(exc))
        raise
    rt = runtime or current()
    pipeline = await rt.pipeline()
    try:
        return await pipeline.process(change)
    except Exception as exc:
        logs.event(
            log,
            "processing_failed",
            level=logging.WARNING,
            device_id=change.device_id,
            correlation_id=change.correlation_id,
            delivery_count=msg.delivery_count,
            error=f"{type(exc).__name__}: {exc}",
        )
        raise
