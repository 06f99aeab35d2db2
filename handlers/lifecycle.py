"""POST /api/graph/lifecycle: Graph's lifecycle notifications for our subscription.

Answered 202 at once; the work (reauthorize, recreate, resync) is queued as a control command
on `device-changes` and done by the processor, off the request path.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from handlers.responses import (
    body_within_limit,
    enqueue_failed,
    json_error,
    payload_too_large,
    validation_response,
)
from shared import logs
from shared.core.commands import Command
from shared.runtime import Runtime, current
from shared.settings import Settings
from shared.sources.notifications import (
    MalformedNotification,
    client_state_matches,
    graph_id,
    hashed_key,
    parse_collection,
)

log = logging.getLogger("devicemon.lifecycle")
COMMAND_FOR_EVENT = {
    "reauthorizationrequired": "reauthorize",
    "subscriptionremoved": "recreate",
    "missed": "sync",
}


async def lifecycle(req: func.HttpRequest, runtime: Runtime | None = None) -> func.HttpResponse:
    handshake = validation_response(req)
    if handshake is not None:
        return handshake
    rt = runtime or current()
    settings = rt.settings
    body = body_within_limit(req, settings.max_notification_bytes)
    if body is None:
        return payload_too_large(log, "lifecycle_rejected", settings.max_notification_bytes)
    try:
        items = parse_collection(body)
    except MalformedNotification as exc:
        logs.event(
            log, "lifecycle_rejected", level=logging.WARNING, outcome="malformed", error=str(exc)
        )
        return json_error(400, "malformedNotification", str(exc))

    commands, dropped = lifecycle_commands(items, settings, datetime.now(UTC).isoformat())
    if dropped:
        logs.event(log, "lifecycle_dropped", level=logging.WARNING, counts=dict(dropped))
    if commands:
        try:
            await rt.change_queue().send_commands(commands)
        except Exception as exc:
            return enqueue_failed(log, exc, len(commands), "the lifecycle work")
    return func.HttpResponse(status_code=202)


def lifecycle_commands(
    items: list[Any], settings: Settings, now: str
) -> tuple[list[Command], Counter[str]]:
    """The control commands Graph's lifecycle notifications ask for, and what was dropped.

    Shared with the notification URL: Graph sends lifecycle notifications there when a
    subscription has no separate lifecycleNotificationUrl (microsoft-graph-docs-contrib
    concepts/webhooks-lifecycle.md), so both routes must turn them into the same commands.
    """
    commands: list[Command] = []
    dropped: Counter[str] = Counter()
    for item in items:
        if not isinstance(item, dict):
            dropped["not_an_object"] += 1
            continue
        if not client_state_matches(item.get("clientState"), settings.client_state):
            dropped["client_state_mismatch"] += 1
            continue
        # Checked before anything is queued: the subscription id goes into a Graph URL
        # (/subscriptions/{id}/reauthorize) and every field into the message, so an id that
        # cannot be Graph's is dropped here rather than failing the send of the whole POST.
        tenant = graph_id(item.get("tenantId"))
        subscription_id = graph_id(item.get("subscriptionId"))
        if tenant is None or subscription_id is None:
            dropped["invalid_id"] += 1
            continue
        if settings.allowed_tenant_ids and tenant.lower() not in settings.allowed_tenant_ids:
            dropped["tenant_not_allowed"] += 1
            continue
        raw_event = item.get("lifecycleEvent")
        event = raw_event if isinstance(raw_event, str) else ""
        name = COMMAND_FOR_EVENT.get(event.lower())
        if name is None:
            dropped["unknown_lifecycle_event"] += 1
            continue
        notification_id = item.get("id")
        if not isinstance(notification_id, str) or not notification_id:
            notification_id = now
        commands.append(
            Command(
                name=name,
                reason=f"lifecycle:{event}",
                requested_at=now,
                subscription_id=subscription_id,
                # A redelivered lifecycle notification is the same request. Hashed: the
                # notification id is whatever the sender wrote, any length, any text.
                dedupe_key=hashed_key(event, subscription_id, notification_id),
            )
        )
        logs.event(
            log,
            "lifecycle_accepted",
            lifecycle_event=event,
            subscription_id=subscription_id,
            command=name,
        )
    return commands, dropped


def is_lifecycle_notification(item: Any) -> bool:
    return isinstance(item, dict) and "lifecycleEvent" in item
