"""The timers (delta sync, subscription upkeep), the control commands the processor hands over,
and the operators' entry points that queue those commands."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import azure.functions as func

from shared import logs
from shared.commands import Command, CommandError
from shared.runtime import Runtime, current

log = logging.getLogger("devicemon.upkeep")


async def sync_timer(timer: func.TimerRequest, runtime: Runtime | None = None) -> None:
    rt = runtime or current()
    result = await (await rt.delta_sync()).run("timer" + (" (past due)" if timer.past_due else ""))
    if result.outcome == "failed":
        # Logged and recorded by the sync; the next tick resumes from the saved cursor.
        logs.event(log, "sync_timer_failed", level=logging.WARNING, error=result.error)


async def subscription_timer(timer: func.TimerRequest, runtime: Runtime | None = None) -> None:
    rt = runtime or current()
    record = await (await rt.subscription_keeper()).ensure()
    logs.event(
        log,
        "subscription_checked",
        status=record.status,
        subscription_id=record.subscription_id or None,
    )


async def run_command(raw: bytes, runtime: Runtime | None = None) -> None:
    """A control command from the queue. Raises to have the message retried."""
    rt = runtime or current()
    try:
        command = Command.from_json(raw)
    except CommandError as exc:
        logs.event(log, "command_poison", level=logging.ERROR, reason=str(exc))
        raise
    logs.event(log, "command_started", command=command.name, reason=command.reason)
    if command.name == "sync":
        result = await (await rt.delta_sync()).run(command.reason)
        if result.outcome == "failed":
            raise RuntimeError(f"delta sync failed: {result.error}")
        return
    keeper = await rt.subscription_keeper()
    if command.name == "reauthorize":
        record = await keeper.reauthorize(command.subscription_id)
    elif command.name == "recreate":
        record = await keeper.recreate()
        # Whatever happened while it was gone is only in delta: catch up now.
        await (await rt.delta_sync()).run(f"{command.reason} (resync)")
    else:
        record = await keeper.ensure()
    logs.event(log, "command_done", command=command.name, status=record.status)


async def queue_command(
    req: func.HttpRequest, name: str, runtime: Runtime | None = None
) -> func.HttpResponse:
    """POST /api/ops/sync and /api/ops/subscription: queue the work, answer 202."""
    rt = runtime or current()
    now = datetime.now(UTC).isoformat()
    command = Command(
        name=name, reason=f"ops:{req.params.get('reason', 'manual')}"[:200], requested_at=now
    )
    await rt.change_queue().send_commands([command])
    logs.event(log, "command_queued", command=name)
    body = json.dumps({"queued": name, "messageId": command.message_id()})
    return func.HttpResponse(body, status_code=202, mimetype="application/json")
