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
from shared.core.models import JUDGED_BY_POLICIES, JUDGED_BY_SETTING, PolicyRef

LOST = "devicemon.eligibility.lost"
RESTORED = "devicemon.eligibility.restored"
AT_RISK = "devicemon.eligibility.at_risk"
AT_RISK_CLEARED = "devicemon.eligibility.at_risk_cleared"
TYPES = (LOST, RESTORED, AT_RISK, AT_RISK_CLEARED)


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
    # Early warning (at_risk, at_risk_cleared): data.risk. `risk_reasons` are the risks the alert
    # is about (for a cleared one, those that went away); `deadline` None = no known instant.
    risk_reasons: tuple[str, ...] = ()
    deadline: datetime | None = None
    lead_hours: int | None = None
    risk_advice: tuple[tuple[str, str], ...] = ()
    current_risk_reasons: tuple[str, ...] = ()  # data.current.riskReasons
    # Who judged eligibility: the CA_POLICY setting or the tenant's policies, and which
    # policies the device fails (data.current.blockingPolicies, reportOnlyFailures).
    judged_by: str = JUDGED_BY_SETTING
    blocking_policies: tuple[PolicyRef, ...] = ()
    report_only_failures: tuple[PolicyRef, ...] = ()

    @property
    def lost(self) -> bool:
        return self.type == LOST

    @property
    def at_risk(self) -> bool:
        return self.type == AT_RISK

    @property
    def cleared(self) -> bool:
        return self.type == AT_RISK_CLEARED

    @property
    def about_risk(self) -> bool:
        """An early warning or its resolution, not a change of eligibility."""
        return self.type in (AT_RISK, AT_RISK_CLEARED)

    @property
    def judged_by_policies(self) -> bool:
        return self.judged_by == JUDGED_BY_POLICIES

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
        """The reasons the alert is about: new ones for `lost`, resolved ones for `restored`,
        the risks for `at_risk` and the risks that went away for `at_risk_cleared`."""
        if self.about_risk:
            return self.risk_reasons
        return self.reasons if self.lost else self.previous_reasons

    def risk_action(self, code: str) -> str | None:
        """What the alert advises about one risk (data.risk.advice), if it says."""
        return dict(self.risk_advice).get(code)


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


def _policies(value: Any, name: str) -> tuple[PolicyRef, ...]:
    if not isinstance(value, list):
        return ()
    try:
        return tuple(PolicyRef.from_json(item) for item in value)
    except ValueError as exc:
        raise AlertFormatError(f"data.current.{name} is malformed: {exc}") from None


def _lead_hours(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
    if event.get("type") not in TYPES:
        raise AlertFormatError(f"unknown event type {event.get('type')!r}")
    data = event.get("data")
    if not isinstance(data, dict) or not event.get("id"):
        raise AlertFormatError("event has no id or no data")
    device = data.get("device") or {}
    previous = data.get("previous") or {}
    current = data.get("current") or {}
    detection = data.get("detection") or {}
    risk = data.get("risk") or {}
    if not isinstance(risk, dict):
        raise AlertFormatError("data.risk is not an object")
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
        risk_reasons=_strings(risk.get("reasons")),
        deadline=parse_time(risk.get("deadline")) or parse_time(current.get("deadline")),
        lead_hours=_lead_hours(risk.get("leadHours")),
        risk_advice=_advice(risk.get("advice")),
        current_risk_reasons=_strings(current.get("riskReasons")),
        judged_by=str(current.get("judgedBy") or JUDGED_BY_SETTING),
        blocking_policies=_policies(current.get("blockingPolicies"), "blockingPolicies"),
        report_only_failures=_policies(current.get("reportOnlyFailures"), "reportOnlyFailures"),
    )
