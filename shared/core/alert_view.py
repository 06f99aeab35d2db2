"""An alert as its consumers read it: the CloudEvent body of `device-alerts`, parsed into a typed,
read-only view. Pure.

The contract is docs/alerts.md and docs/alert.schema.json; this module reads only what the
built-in consumers (Teams, remediation) need, and fails with `AlertFormatError` on a body that is
not an alert at all (a poison message) rather than guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.core import explain
from shared.core.compliance_details import ComplianceDetails

LOST = "devicemon.eligibility.lost"
RESTORED = "devicemon.eligibility.restored"


class AlertFormatError(ValueError):
    """The message body is not a devicemon alert; retrying will not help."""


@dataclass(frozen=True, slots=True)
class AlertView:
    id: str
    type: str
    time: datetime
    object_id: str
    device_id: str | None
    display_name: str | None
    join_type: str
    trust_type: str | None
    operating_system: str | None
    operating_system_version: str | None
    management: str
    managed_device_id: str | None
    user_principal_name: str | None
    previous_eligible: bool
    previous_reasons: tuple[str, ...]
    previous_evaluated_at: datetime | None
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    compliance: str
    grace_period_expires: datetime | None
    policy: str
    severity: str
    detection_source: str
    detected_at: datetime
    correlation_id: str
    state_version: int
    # Added after v1's first release: absent from older alerts, so optional with defaults.
    ownership: str | None = None
    on_premises_sync: bool | None = None
    compliance_workload: str | None = None
    removed_reason: str | None = None
    previous_object_id: str | None = None
    summary: str = ""
    advice: tuple[tuple[str, str], ...] = ()
    # data.compliance: the failing policies and settings, or why Intune could not be read.
    compliance_details: ComplianceDetails | None = None

    @property
    def lost(self) -> bool:
        return self.type == LOST

    @property
    def name(self) -> str:
        """What people call the device: its display name, else its object id."""
        return self.display_name or self.object_id

    def action(self, code: str) -> str:
        """What to do about a reason: the alert's own advice (chosen for this device's origin),
        else the code's general advice."""
        return dict(self.advice).get(code) or explain.reason(code).action

    @property
    def subject_reasons(self) -> tuple[str, ...]:
        """The reasons the alert is about: new ones for `lost`, resolved ones for `restored`."""
        return self.reasons if self.lost else self.previous_reasons


def parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise AlertFormatError(f"not a timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AlertFormatError(f"not a timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _required_time(value: Any, name: str) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise AlertFormatError(f"{name} is missing")
    return parsed


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value)


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _advice(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        (str(item["reason"]), str(item["action"]))
        for item in value
        if isinstance(item, dict) and item.get("reason") and item.get("action")
    )


def _compliance(value: Any) -> ComplianceDetails | None:
    if not isinstance(value, dict):
        return None
    try:
        return ComplianceDetails.from_json(value)
    except (KeyError, TypeError) as exc:
        raise AlertFormatError(f"data.compliance is malformed: {exc}") from None


def parse_alert(body: bytes | str | dict[str, Any]) -> AlertView:
    """Parse a message body (or an already decoded alert) into an AlertView."""
    if isinstance(body, dict):
        event = body
    else:
        try:
            event = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AlertFormatError(f"body is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise AlertFormatError("body is not a JSON object")
    if event.get("type") not in (LOST, RESTORED):
        raise AlertFormatError(f"unknown event type {event.get('type')!r}")
    data = event.get("data")
    if not isinstance(data, dict) or not event.get("id"):
        raise AlertFormatError("event has no id or no data")
    device = data.get("device") or {}
    previous = data.get("previous") or {}
    current = data.get("current") or {}
    detection = data.get("detection") or {}
    if not isinstance(device, dict) or not device.get("objectId"):
        raise AlertFormatError("data.device.objectId is missing")
    try:
        version = int(data.get("stateVersion") or 0)
    except (TypeError, ValueError):
        raise AlertFormatError("data.stateVersion is not a number") from None
    time = _required_time(event.get("time"), "time")
    return AlertView(
        id=str(event["id"]),
        type=str(event["type"]),
        time=time,
        object_id=str(device["objectId"]),
        device_id=_opt(device.get("deviceId")),
        display_name=_opt(device.get("displayName")),
        join_type=str(device.get("joinType") or "unknown"),
        trust_type=_opt(device.get("trustType")),
        operating_system=_opt(device.get("operatingSystem")),
        operating_system_version=_opt(device.get("operatingSystemVersion")),
        management=str(device.get("management") or "unknown"),
        managed_device_id=_opt(device.get("managedDeviceId")),
        user_principal_name=_opt(device.get("userPrincipalName")),
        previous_eligible=bool(previous.get("eligible")),
        previous_reasons=_strings(previous.get("reasons")),
        previous_evaluated_at=parse_time(previous.get("evaluatedAt")),
        reasons=_strings(current.get("reasons")),
        warnings=_strings(current.get("warnings")),
        compliance=str(current.get("compliance") or "unknown"),
        grace_period_expires=parse_time(current.get("gracePeriodExpires")),
        policy=str(data.get("policy") or ""),
        severity=str(data.get("severity") or ""),
        detection_source=str(detection.get("source") or ""),
        detected_at=parse_time(detection.get("detectedAt")) or time,
        correlation_id=str(detection.get("correlationId") or ""),
        state_version=version,
        ownership=_opt(device.get("ownership")),
        on_premises_sync=_opt_bool(device.get("onPremisesSyncEnabled")),
        compliance_workload=_opt(device.get("complianceWorkload")),
        removed_reason=_opt(device.get("removedReason")),
        previous_object_id=_opt(previous.get("objectId")),
        summary=str(current.get("summary") or ""),
        advice=_advice(current.get("advice")),
        compliance_details=_compliance(data.get("compliance")),
    )
