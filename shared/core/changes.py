"""The `device-changes` queue message: one device may have changed, and what was seen of it. Pure.

A change from a notification is a bare hint: the processor re-reads the device, so late,
duplicate and out-of-order hints all converge on the truth. A change from a source that already
holds the device's facts (a delta item, a page of the Intune list) carries them as an
observation with the instant they were read (shared/core/observations.py); the processor
evaluates from it without another Graph read, and an observation older than the stored one
changes nothing.

Every producer (notifications, the delta sync, anything that enqueues) builds a DeviceChange, so
the device id is normalised here, once, at construction: Graph object ids are case-insensitive
GUIDs that Graph itself writes in lower case, while Table storage keys and Service Bus session ids
are case-sensitive. An id in another case would otherwise read no DeviceState row (wrong key),
take a known device for a new one and run in a second session beside the device's own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from typing import Any

from shared.core.models import Source
from shared.core.observations import Facts, ObservationError

# 2: an optional "observation" (v1 messages, bare hints, are still read).
SCHEMA_VERSION = 2


def normalize_graph_id(raw: str) -> str:
    """A Graph id (a device object id, a subscription id: case-insensitive GUIDs) as Graph writes
    it and as devicemon keys tables, sessions and comparisons with it: trimmed, lower case."""
    return raw.strip().lower()


class ChangeMessageError(ValueError):
    """A queue message that is not a device change; it is dead-lettered, never retried forever."""


@dataclass(frozen=True, slots=True)
class DeviceChange:
    device_id: str
    change_type: str
    source: Source
    message_id: str
    correlation_id: str
    received_at: str
    tenant_id: str = ""
    subscription_id: str = ""
    # How many times this change was rescheduled after a failure that may pass (retry.py).
    attempt: int = 0
    # What the source saw of the device; None for a bare hint.
    facts: Facts | None = None

    def __post_init__(self) -> None:
        # Frozen: the normalised id is set once, whoever builds the change.
        object.__setattr__(self, "device_id", normalize_graph_id(self.device_id))

    def to_json(self) -> str:
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "facts"}
        body["source"] = self.source.value
        body["schema"] = SCHEMA_VERSION
        if self.facts is not None:
            body["observation"] = self.facts.to_dict()
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> DeviceChange:
        try:
            body: Any = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ChangeMessageError(f"message body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ChangeMessageError("message body is not a JSON object")
        device_id = body.get("device_id")
        if not isinstance(device_id, str) or not device_id.strip():
            raise ChangeMessageError("message has no device_id")
        try:
            source = Source(body.get("source", Source.NOTIFICATION.value))
        except ValueError:
            raise ChangeMessageError(f"unknown source {body.get('source')!r}") from None
        return cls(
            device_id=device_id,  # normalised by __post_init__
            change_type=str(body.get("change_type") or "updated"),
            source=source,
            message_id=str(body.get("message_id") or ""),
            correlation_id=str(body.get("correlation_id") or body.get("message_id") or ""),
            received_at=str(body.get("received_at") or ""),
            tenant_id=str(body.get("tenant_id") or ""),
            subscription_id=str(body.get("subscription_id") or ""),
            attempt=_attempt(body.get("attempt")),
            facts=_facts(body.get("observation")),
        )


def _facts(value: Any) -> Facts | None:
    """The observation, or None: a change whose observation cannot be read still names its
    device, and a re-read (what a bare hint costs) is better than a dead letter."""
    if value is None:
        return None
    try:
        return Facts.from_dict(value)
    except ObservationError:
        return None


def _attempt(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def retry_of(change: DeviceChange) -> DeviceChange:
    """The same change, for its next scheduled attempt. A new message id: the queue's duplicate
    detection would drop a copy that kept the original's.

    Without its observation: a scheduled retry comes after changes the sync queued later for the
    same device, which may already have been merged onto the stored snapshot without this one's
    properties (observations.plan relies on order). Re-read, it brings the device's whole truth."""
    attempt = change.attempt + 1
    message_id = hashlib.sha256(f"{change.message_id}|retry|{attempt}".encode()).hexdigest()[:32]
    return replace(change, attempt=attempt, message_id=message_id, facts=None)


def out_of_order(change: DeviceChange) -> DeviceChange:
    """The change as a bare hint, for a delivery that left the order the source queued it in
    (a dead letter sent back): see `retry_of`."""
    return replace(change, facts=None)
