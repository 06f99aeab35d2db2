"""Graph change-notification payloads: parse, authenticate, turn into device changes. Pure.

Runs on the webhook's request path, so it imports nothing heavy (never msgraph).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.changes import DeviceChange
from shared.models import Source

DEVICE_ODATA_TYPE = "#microsoft.graph.device"


class MalformedNotification(ValueError):
    """The body is not a Graph notification collection; answered 400."""


@dataclass(slots=True)
class Triage:
    """What became of one POST's notifications: changes to enqueue, and drops counted by reason."""

    changes: list[DeviceChange] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


def parse_collection(body: bytes) -> list[Any]:
    """The `value` array of a notification POST, or MalformedNotification saying what is wrong."""
    if not body:
        raise MalformedNotification("empty body: expected a JSON object with a 'value' array")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedNotification(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("value"), list):
        raise MalformedNotification("expected a JSON object with a 'value' array")
    return document["value"]


def client_state_matches(received: object, expected: str) -> bool:
    if not isinstance(received, str):
        return False
    return hmac.compare_digest(received.encode(), expected.encode())


def device_id_of(item: dict[str, Any]) -> str | None:
    """The device object id, from resourceData.id or else from `resource` ('devices/{id}')."""
    data = item.get("resourceData")
    if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
        return str(data["id"])
    resource = item.get("resource")
    if isinstance(resource, str):
        parts = resource.strip("/").split("/")
        if len(parts) == 2 and parts[0].lower() == "devices" and parts[1]:
            return parts[1]
    return None


def notification_message_id(item: dict[str, Any], device_id: str, fallback: str) -> str:
    """Deterministic when Graph gives the notification an `id`: a redelivery of the same
    notification gets the same message id, which the queue's duplicate detection drops. Without an
    `id` two real changes could look alike, so `fallback` (arrival time and position) keeps them
    apart: a duplicate costs one idempotent re-read, a dropped change would cost a missed alert."""
    notification_id = item.get("id")
    parts = [str(item.get(k, "")) for k in ("tenantId", "subscriptionId", "changeType")]
    parts.append(str(notification_id) if notification_id else fallback)
    return hashlib.sha256("|".join([*parts, device_id]).encode()).hexdigest()[:32]


def triage(
    items: list[Any],
    *,
    client_state: str,
    allowed_tenants: frozenset[str],
    received_at: str,
) -> Triage:
    """Decide, per notification, whether it is ours and about a device; never raises."""
    result = Triage()
    for position, item in enumerate(items):
        reason = _rejection(item, client_state, allowed_tenants)
        if reason:
            result.dropped[reason] += 1
            continue
        device_id = device_id_of(item)
        if device_id is None:
            result.dropped["no_device_id"] += 1
            continue
        message_id = notification_message_id(item, device_id, f"{received_at}#{position}")
        result.changes.append(
            DeviceChange(
                device_id=device_id,
                change_type=str(item.get("changeType", "updated")),
                source=Source.NOTIFICATION,
                message_id=message_id,
                correlation_id=message_id,
                received_at=received_at,
                tenant_id=str(item.get("tenantId") or ""),
                subscription_id=str(item.get("subscriptionId") or ""),
            )
        )
    return result


def _rejection(item: Any, client_state: str, allowed_tenants: frozenset[str]) -> str | None:
    if not isinstance(item, dict):
        return "not_an_object"
    if "lifecycleEvent" in item:
        return "lifecycle_event_on_notification_url"
    if not client_state_matches(item.get("clientState"), client_state):
        return "client_state_mismatch"
    tenant = str(item.get("tenantId") or "").lower()
    if allowed_tenants and tenant not in allowed_tenants:
        return "tenant_not_allowed"
    data = item.get("resourceData")
    odata_type = data.get("@odata.type") if isinstance(data, dict) else None
    if isinstance(odata_type, str) and odata_type.lower() != DEVICE_ODATA_TYPE:
        return "not_a_device"
    return None
