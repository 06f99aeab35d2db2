"""POST /api/graph/notifications: validate, enqueue, 202 — nothing slower.

Graph wants an answer within 3 s and drops notifications for endpoints that are often slow, so
the work happens in the processor. Never imports msgraph (see tests/handlers/test_webhook.py).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import azure.functions as func

from handlers.lifecycle import is_lifecycle_notification, lifecycle_commands
from handlers.responses import (
    body_within_limit,
    enqueue_failed,
    json_error,
    payload_too_large,
    validation_response,
)
from shared import logs
from shared.runtime import Runtime, current
from shared.sources.notifications import MalformedNotification, parse_collection, triage

log = logging.getLogger("devicemon.webhook")


async def notifications(req: func.HttpRequest, runtime: Runtime | None = None) -> func.HttpResponse:
    handshake = validation_response(req)
    if handshake is not None:
        return handshake
    started = time.perf_counter()
    rt = runtime or current()
    settings = rt.settings
    body = body_within_limit(req, settings.max_notification_bytes)
    if body is None:
        return payload_too_large(log, "notification_rejected", settings.max_notification_bytes)
    try:
        items = parse_collection(body)
    except MalformedNotification as exc:
        logs.event(
            log, "notification_rejected", level=logging.WARNING, outcome="malformed", error=str(exc)
        )
        return json_error(400, "malformedNotification", str(exc))

    received_at = datetime.now(UTC).isoformat()
    lifecycle_items = [item for item in items if is_lifecycle_notification(item)]
    commands, lifecycle_dropped = lifecycle_commands(lifecycle_items, settings, received_at)
    result = triage(
        [item for item in items if not is_lifecycle_notification(item)],
        client_state=settings.client_state,
        allowed_tenants=settings.allowed_tenant_ids,
        received_at=received_at,
    )
    dropped = result.dropped + lifecycle_dropped
    if dropped:
        logs.event(log, "notifications_dropped", level=logging.WARNING, counts=dict(dropped))
    if result.changes or commands:
        try:
            # Both are idempotent on redelivery (deterministic message ids, command dedupe
            # keys), so a 503 after one of the two sends succeeded is safe for Graph to retry.
            queue = rt.change_queue()
            if result.changes:
                await queue.send(result.changes)
            if commands:
                await queue.send_commands(commands)
        except Exception as exc:
            count = len(result.changes) + len(commands)
            return enqueue_failed(log, exc, count, "the notifications")
    for change in result.changes:
        logs.event(
            log,
            "notification_accepted",
            device_id=change.device_id,
            correlation_id=change.correlation_id,
            change_type=change.change_type,
        )
    logs.event(
        log,
        "notifications_handled",
        accepted=len(result.changes),
        lifecycle=len(commands),
        dropped=sum(dropped.values()),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return func.HttpResponse(status_code=202)
