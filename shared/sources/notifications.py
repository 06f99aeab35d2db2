"""Graph change-notification payloads: parse, authenticate, turn into device changes. Pure.

Runs on the webhook's request path, so it imports nothing heavy (never msgraph).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.core.changes import DeviceChange
from shared.core.models import Source

DEVICE_ODATA_TYPE = "#microsoft.graph.device"
# The change types Graph sends; anything else did not come from our subscription.
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})

# Graph device object ids are GUIDs (36 characters). Anything else in `resourceData.id` or
# `resource` cannot be a device: dropped and counted, never queued. Queued, it would become the
# message's session id, and Service Bus refuses a session id over 128 characters, which fails the
# send of the whole batch: the POST would answer 503 and Graph would redeliver it, and the good
# notifications riding with it, for hours. A GUID also never costs a Graph read that cannot succeed.
_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
# Tenant and subscription ids are GUIDs too, but tests and tools use short names: accept any
# id-shaped token that fits Service Bus's 128-character id limit. No dot or slash, so a
# subscription id is safe in the Graph URL the processor builds from it (/subscriptions/{id}/...).
_GRAPH_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


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
    except ValueError:
        # json.loads refuses integer literals over 4,300 digits (CPython's guard against
        # quadratic int parsing) with a plain ValueError.
        raise MalformedNotification("body holds a number too long to read") from None
    except RecursionError:
        # Arrays or objects nested ~1,000 deep exhaust the parser's recursion limit.
        raise MalformedNotification("body nests too deeply") from None
    if not isinstance(document, dict) or not isinstance(document.get("value"), list):
        raise MalformedNotification("expected a JSON object with a 'value' array")
    return document["value"]


def client_state_matches(received: object, expected: str) -> bool:
    """Constant-time comparison of bytes (compare_digest refuses non-ASCII str). JSON's "\\ud800"
    escapes decode to lone surrogates, which strict UTF-8 cannot encode: "surrogatepass" encodes
    every str, one-to-one, so such a clientState is compared (and fails) instead of raising."""
    if not isinstance(received, str):
        return False
    return hmac.compare_digest(_utf8(received), _utf8(expected))


def graph_id(value: object) -> str | None:
    """`value` as a tenant or subscription id fit to queue: "" when absent, None when it cannot
    be one (not a string, too long for a Service Bus id, or characters no Graph id has)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and _GRAPH_ID.fullmatch(value):
        return value
    return None


def is_device_object_id(value: str) -> bool:
    return _GUID.fullmatch(value) is not None


def change_type_of(item: dict[str, Any]) -> str | None:
    """Graph's change type in lower case ("updated" when absent), or None for any other value."""
    value = item.get("changeType")
    if value is None or value == "":
        return "updated"
    if isinstance(value, str) and value.lower() in CHANGE_TYPES:
        return value.lower()
    return None


def device_id_of(item: dict[str, Any]) -> str | None:
    """The device object id as given, from resourceData.id or else from `resource`
    ('devices/{id}'); `is_device_object_id` says whether it can be one."""
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
    # Only strings: str() of a deeply nested value would recurse, and a non-string id is not
    # Graph's, so the arrival-based fallback (never merges two changes) is the safe reading.
    parts = [_text(item.get(k)) for k in ("tenantId", "subscriptionId", "changeType")]
    parts.append(
        notification_id if isinstance(notification_id, str) and notification_id else fallback
    )
    return hashlib.sha256(_utf8("|".join([*parts, device_id]))).hexdigest()[:32]


def hashed_key(*parts: str) -> str:
    """A fixed-length key from untrusted text of any length (lone surrogates included)."""
    return hashlib.sha256(_utf8("|".join(parts))).hexdigest()[:32]


def triage(
    items: list[Any],
    *,
    client_state: str,
    allowed_tenants: frozenset[str],
    received_at: str,
) -> Triage:
    """Decide, per notification, whether it is ours and about a device; never raises.

    Every field that reaches the queue message is checked here, so one odd item is dropped and
    counted on its own and can never fail the send of the others (a 503 for the whole POST).
    """
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
        if not is_device_object_id(device_id):
            result.dropped["invalid_device_id"] += 1
            continue
        change_type = change_type_of(item)
        if change_type is None:
            result.dropped["unknown_change_type"] += 1
            continue
        message_id = notification_message_id(item, device_id, f"{received_at}#{position}")
        result.changes.append(
            DeviceChange(
                device_id=device_id,
                change_type=change_type,
                source=Source.NOTIFICATION,
                message_id=message_id,
                correlation_id=message_id,
                received_at=received_at,
                tenant_id=graph_id(item.get("tenantId")) or "",
                subscription_id=graph_id(item.get("subscriptionId")) or "",
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
    tenant = graph_id(item.get("tenantId"))
    subscription = graph_id(item.get("subscriptionId"))
    if tenant is None or subscription is None:
        return "invalid_id"
    if allowed_tenants and tenant.lower() not in allowed_tenants:
        return "tenant_not_allowed"
    data = item.get("resourceData")
    odata_type = data.get("@odata.type") if isinstance(data, dict) else None
    if isinstance(odata_type, str) and odata_type.lower() != DEVICE_ODATA_TYPE:
        return "not_a_device"
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
