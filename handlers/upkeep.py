"""The timers (delta sync, subscription upkeep), the control commands the processor hands over,
and the operators' entry points that queue those commands."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import azure.functions as func

from handlers.responses import json_error
from shared import logs
from shared.adapters.pending_alerts import sweep
from shared.core.commands import Command, CommandError
from shared.runtime import Runtime, current

log = logging.getLogger("devicemon.upkeep")
# Health counts failures over minutes; a day of rows is plenty to look back on.
FAILURE_RETENTION = timedelta(days=1)


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


async def sweep_timer(timer: func.TimerRequest, runtime: Runtime | None = None) -> None:
    """Publish alerts left pending (shared/adapters/pending_alerts.py); prune old failure rows."""
    rt = runtime or current()
    now = datetime.now(UTC)
    pipeline = await rt.pipeline()
    store = await rt.store()
    result = await sweep(
        await rt.pending_alerts(),
        read_state=store.get_state,
        publish_pending=pipeline.publish_pending,
        now=now,
        older_than=timedelta(seconds=rt.settings.pending_alert_sweep_seconds),
    )
    pruned = await (await rt.failure_log()).prune(now - FAILURE_RETENTION)
    if result.examined or pruned:
        logs.event(
            log,
            "sweep_completed",
            level=logging.WARNING if result.republished or result.failed else logging.INFO,
            examined=result.examined,
            republished=result.republished,
            dropped=result.dropped,
            failed=result.failed,
            failures_pruned=pruned,
        )
    if result.failed:
        # Let the host record a failed run; the next tick tries again.
        raise RuntimeError(f"{result.failed} pending alert(s) could not be published")


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


async def _sync_busy(rt: Runtime) -> func.HttpResponse | None:
    """409 while a sync run holds a live lease: queueing another would only be turned away."""
    try:
        async with asyncio.timeout(5):
            state = await (await rt.bookkeeping()).sync_state()
    except Exception:
        return None  # cannot tell: queue it, the run itself checks the lease
    now = datetime.now(UTC)
    if not state.lease_owner or state.lease_until is None or state.lease_until <= now:
        return None
    started = state.run_started_at.isoformat() if state.run_started_at else None
    body = {
        "error": {
            "code": "syncBusy",
            "message": "a delta sync is running; try again when it has finished",
        },
        "runStartedAt": started,
        "leaseUntil": state.lease_until.isoformat(),
    }
    return func.HttpResponse(json.dumps(body), status_code=409, mimetype="application/json")


async def queue_command(
    req: func.HttpRequest, name: str, runtime: Runtime | None = None
) -> func.HttpResponse:
    """POST /api/ops/sync and /api/ops/subscription: queue the work, answer 202."""
    rt = runtime or current()
    if name == "sync":
        busy = await _sync_busy(rt)
        if busy is not None:
            return busy
    now = datetime.now(UTC).isoformat()
    command = Command(
        name=name, reason=f"ops:{req.params.get('reason', 'manual')}"[:200], requested_at=now
    )
    try:
        await rt.change_queue().send_commands([command])
    except Exception as exc:
        logs.event(
            log,
            "command_enqueue_failed",
            level=logging.ERROR,
            command=name,
            error=type(exc).__name__,
        )
        return json_error(503, "enqueueFailed", f"could not queue {name}; retry later")
    logs.event(log, "command_queued", command=name)
    body = json.dumps({"queued": name, "messageId": command.message_id()})
    return func.HttpResponse(body, status_code=202, mimetype="application/json")
