"""POST /api/graph/notifications: validate, enqueue, 202 — nothing slower.

Graph wants an answer within 3 s and drops notifications for endpoints that are often slow, so
the work happens in the processor. Never imports msgraph (see tests/handlers/test_webhook.py).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import azure.functions as func

from shared import logs
from shared.notifications import MalformedNotification, parse_collection, triage
from shared.runtime import Runtime, current

log = logging.getLogger("devicemon.webhook")


def validation_response(req: func.HttpRequest) -> func.HttpResponse | None:
    """Graph's subscription handshake: echo the (already URL-decoded) token as text/plain."""
    token = req.params.get("validationToken")
    if token is None:
        return None
    logs.event(log, "validation_handshake", route=req.url.split("?", 1)[0])
    return func.HttpResponse(token, status_code=200, mimetype="text/plain")


def json_error(status: int, code: str, message: str) -> func.HttpResponse:
    body = json.dumps({"error": {"code": code, "message": message}})
    return func.HttpResponse(body, status_code=status, mimetype="application/json")


def body_within_limit(req: func.HttpRequest, limit: int) -> bytes | None:
    declared = req.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    body = req.get_body()
    return body if len(body) <= limit else None


async def notifications(req: func.HttpRequest, runtime: Runtime | None = None) -> func.HttpResponse:
    handshake = validation_response(req)
    if handshake is not None:
        return handshake
    started = time.perf_counter()
    rt = runtime or current()
    settings = rt.settings
    body = body_within_limit(req, settings.max_notification_bytes)
    if body is None:
        logs.event(log, "notification_rejected", level=logging.WARNING, outcome="too_large")
        return json_error(
            413, "payloadTooLarge", f"body exceeds {settings.max_notification_bytes} bytes"
        )
    try:
        items = parse_collection(body)
    except MalformedNotification as exc:
        logs.event(
            log, "notification_rejected", level=logging.WARNING, outcome="malformed", error=str(exc)
        )
        return json_error(400, "malformedNotification", str(exc))

    received_at = datetime.now(UTC).isoformat()
    result = triage(
        items,
        client_state=settings.client_state,
        allowed_tenants=settings.allowed_tenant_ids,
        received_at=received_at,
    )
    if result.dropped:
        logs.event(log, "notifications_dropped", level=logging.WARNING, counts=dict(result.dropped))
    if result.changes:
        try:
            await rt.change_queue().send(result.changes)
        except Exception as exc:
            # Not durably queued: a 5xx makes Graph deliver again; a 202 would lose the change.
            logs.event(
                log,
                "enqueue_failed",
                level=logging.ERROR,
                error=type(exc).__name__,
                count=len(result.changes),
            )
            return json_error(
                503, "enqueueFailed", "could not queue the notifications; retry later"
            )
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
        dropped=sum(result.dropped.values()),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return func.HttpResponse(status_code=202)
