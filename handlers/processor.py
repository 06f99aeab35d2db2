"""Service Bus trigger on `device-changes` (sessions: one device at a time, in order).

Returning completes the message; raising abandons it, and Service Bus dead-letters it after the
queue's max delivery count. A change that failed for a reason that may pass (Graph or storage
down) is not abandoned, which Service Bus would redeliver at once: its next attempt is scheduled
with a growing delay (shared/retry.py) and this delivery completes, so a long outage ends in
late evaluations, not in the dead-letter queue. A message that can never be processed is logged with its reason on
every attempt (see docs/reliability.md for why the reason travels in logs, not the DLQ).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import azure.functions as func

from handlers.messages import counts_failures, log_poison, record_failure
from shared import logs
from shared.adapters.store import HistoryConflict
from shared.core.changes import ChangeMessageError, DeviceChange, out_of_order, retry_of
from shared.core.commands import is_command
from shared.processing.pipeline import Outcome
from shared.retry import MAX_REDELIVERIES, redelivery_delay
from shared.runtime import Runtime, current

log = logging.getLogger("devicemon.processor")
# Set on a dead letter sent back to the queue (shared/adapters/dead_letters.py).
REDRIVEN = "redrivenFrom"


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
    if REDRIVEN in (msg.application_properties or {}):
        return out_of_order(change)
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
            attempt=change.attempt,
            error=f"{type(exc).__name__}: {exc}",
        )
        if not may_pass(exc) or change.attempt >= MAX_REDELIVERIES:
            raise  # no later try fixes it, or the outage outlasted ~40 minutes: the DLQ
        if not await _reschedule(rt, msg, change, exc):
            raise
        return None


def may_pass(exc: BaseException) -> bool:
    """Whether a later try may succeed: not for a table that contradicts itself, nor for a
    request Graph refuses as such (4xx other than throttling or a timeout)."""
    if isinstance(exc, HistoryConflict):
        return False
    status = getattr(exc, "response_status_code", None)  # kiota's APIError (Graph answers)
    return not (isinstance(status, int) and 400 <= status < 500 and status not in (408, 429))


async def _reschedule(
    rt: Runtime, msg: func.ServiceBusMessage, change: DeviceChange, exc: Exception
) -> bool:
    """Schedule the change's next attempt with a growing delay; the caller then completes this
    delivery. Scheduled before completed: a crash in between leaves two tries of one change,
    which the pipeline makes idempotent, never none. False when Service Bus refused the
    schedule too (the message is then abandoned as usual)."""
    retry = retry_of(change)
    delay = redelivery_delay(retry.attempt)
    try:
        await (
            rt.change_queue()
            .with_timeout(None)
            .schedule(retry, datetime.now(UTC) + timedelta(seconds=delay))
        )
    except Exception as schedule_exc:
        logs.event(
            log,
            "reschedule_failed",
            level=logging.WARNING,
            device_id=change.device_id,
            error=type(schedule_exc).__name__,
        )
        return False
    await record_failure(rt, "processor", msg, exc)  # still a failure, for health's count
    logs.event(
        log,
        "processing_rescheduled",
        level=logging.WARNING,
        device_id=change.device_id,
        correlation_id=change.correlation_id,
        attempt=retry.attempt,
        delay_seconds=delay,
        message_id=retry.message_id,
    )
    return True
