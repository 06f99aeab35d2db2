"""Alert events (CloudEvents 1.0, structured JSON) for the `device-alerts` topic. Pure.

The contract is docs/alerts.md and docs/alert.schema.json; tests validate every published alert
against that schema.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core.models import DeviceSnapshot, Evaluation, ManagedDeviceSnapshot, Source, Transition

EVENT_TYPES = {
    Transition.LOST: "devicemon.eligibility.lost",
    Transition.RESTORED: "devicemon.eligibility.restored",
}
SEVERITY = {Transition.LOST: "high", Transition.RESTORED: "info"}
# A fixed namespace makes event ids reproducible across processes and redeliveries.
EVENT_NAMESPACE = uuid.UUID("5b1f4c1e-8f0a-4a55-9d2c-6c0d3e1b7a10")
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class PreviousVerdict:
    eligible: bool
    reasons: tuple[str, ...]
    evaluated_at: datetime | None


def event_id(device_object_id: str, version: int, transition: Transition) -> str:
    """One id per (device, state version, transition): redeliveries republish the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{device_object_id}:{version}:{transition.value}"))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def build_alert(
    *,
    transition: Transition,
    version: int,
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None,
    evaluation: Evaluation,
    previous: PreviousVerdict,
    source: Source,
    detected_at: datetime,
    correlation_id: str,
    event_source: str,
) -> dict[str, Any]:
    if transition not in EVENT_TYPES:
        raise ValueError(f"{transition} does not raise an alert")
    return {
        "specversion": "1.0",
        "id": event_id(device.object_id, version, transition),
        "source": event_source,
        "type": EVENT_TYPES[transition],
        "subject": f"devices/{device.object_id}",
        "time": _iso(detected_at),
        "datacontenttype": "application/json",
        "data": {
            "device": {
                "objectId": device.object_id,
                "deviceId": device.device_id,
                "displayName": device.display_name,
                "joinType": evaluation.join_type.value,
                "trustType": device.trust_type,
                "operatingSystem": device.operating_system,
                "operatingSystemVersion": device.operating_system_version,
                "management": evaluation.management.value,
                "managedDeviceId": managed.managed_device_id if managed else None,
                "userPrincipalName": managed.user_principal_name if managed else None,
            },
            "previous": {
                "eligible": previous.eligible,
                "reasons": list(previous.reasons),
                "evaluatedAt": _iso(previous.evaluated_at),
            },
            "current": {
                "eligible": evaluation.eligible,
                "reasons": [r.value for r in evaluation.reasons],
                "warnings": [w.value for w in evaluation.warnings],
                "compliance": evaluation.compliance.value,
                "gracePeriodExpires": _iso(evaluation.grace_period_expires),
            },
            "policy": evaluation.policy.value,
            "severity": SEVERITY[transition],
            "detection": {
                "source": source.value,
                "detectedAt": _iso(detected_at),
                "correlationId": correlation_id,
            },
            "stateVersion": version,
        },
    }


def application_properties(alert: dict[str, Any]) -> dict[str, str]:
    """What subscriptions filter on without parsing bodies (SQL filters on these names)."""
    data = alert["data"]
    reasons = data["current"]["reasons"] or data["previous"]["reasons"]
    return {
        "type": alert["type"],
        "severity": data["severity"],
        "joinType": data["device"]["joinType"],
        "reasons": ",".join(reasons),
        "policy": data["policy"],
        "deviceId": data["device"]["objectId"],
    }
