"""Alert events (CloudEvents 1.0, structured JSON) for the `device-alerts` topic. Pure.

The contract is docs/alerts.md and docs/alert.schema.json; tests validate every published alert
against that schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.core.advice import Origin, action, risk_action, why
from shared.core.compliance_details import ComplianceDetails
from shared.core.evaluation import classify, compliance_workload
from shared.core.models import (
    DeviceSnapshot,
    Evaluation,
    ManagedDeviceSnapshot,
    Reason,
    Source,
    Transition,
    Warning_,
)
from shared.core.records import DeviceRecord

EVENT_TYPES = {
    Transition.LOST: "devicemon.eligibility.lost",
    Transition.RESTORED: "devicemon.eligibility.restored",
    Transition.AT_RISK: "devicemon.eligibility.at_risk",
    Transition.AT_RISK_CLEARED: "devicemon.eligibility.at_risk_cleared",
}
SEVERITY = {
    Transition.LOST: "high",
    Transition.RESTORED: "info",
    Transition.AT_RISK: "warning",
    Transition.AT_RISK_CLEARED: "info",
}
_RISK_EVENTS = (Transition.AT_RISK, Transition.AT_RISK_CLEARED)
# A fixed namespace makes event ids reproducible across processes and redeliveries.
EVENT_NAMESPACE = uuid.UUID("5b1f4c1e-8f0a-4a55-9d2c-6c0d3e1b7a10")
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class PreviousVerdict:
    eligible: bool
    reasons: tuple[str, ...]
    evaluated_at: datetime | None
    # Set when the verdict was held on another object for the same device (same deviceId).
    object_id: str | None = None
    # The risk episode it was in: what an at_risk_cleared alert says went away.
    risk_reasons: tuple[str, ...] = ()
    deadline: datetime | None = None


def verdict_of(record: DeviceRecord) -> PreviousVerdict:
    return PreviousVerdict(
        record.eligible,
        record.reasons,
        record.evaluated_at,
        risk_reasons=record.risk_reasons,
        deadline=record.deadline,
    )


def wants_predecessor(device: DeviceSnapshot, evaluation: Evaluation) -> bool:
    """Whether a first sighting should look for the device's previous object. Entra Connect
    re-creates a deleted hybrid device as a new object with the same deviceId, Pending
    (SupportArticles-docs `pending-devices.md`: "Microsoft Entra Connect Sync creates a pending
    device object for this device"; entra-docs `concept-soft-delete-devices.md`: it matches "on
    the same DeviceId"). Only that case is looked up: a device joined again by hand gets a new
    deviceId, so nothing else can have a predecessor."""
    return bool(device.device_id) and "HYBRID_JOIN_PENDING" in evaluation.reasons


def predecessor_verdict(object_id: str, records: list[DeviceRecord]) -> PreviousVerdict | None:
    """The last verdict devicemon held on another object of the same device while that object
    existed (its deleted record says nothing about the device's access before)."""
    alive = [r for r in records if r.object_id != object_id and not r.deleted]
    if not alive:
        return None
    latest = max(alive, key=lambda r: r.evaluated_at)
    return PreviousVerdict(latest.eligible, latest.reasons, latest.evaluated_at, latest.object_id)


def _targeted(warnings: tuple[str, ...] | list[str]) -> bool:
    return Warning_.NOT_TARGETED.value not in warnings


def transition_of(
    previous: DeviceRecord | None,
    evaluation: Evaluation,
    digest: str,
    predecessor: PreviousVerdict | None = None,
) -> Transition:
    """How this evaluation relates to what devicemon knew. Beyond `classify`: a first sighting
    of an ineligible object whose predecessor was eligible is a loss (the user had access on
    the old object and has none on the new one), and a device outside the policy's scope (its
    previous or its current verdict NOT_TARGETED) never moves eligibility: a deleted printer is
    a change, not a lost alert.

    A risk episode (shared/core/risk.py) opens with AT_RISK when an eligible device that was not
    at risk is at risk, and closes with AT_RISK_CLEARED when it is eligible and no longer at risk;
    a loss during the episode is LOST, with no clearing. A device restored straight into a risk
    starts its episode without an at_risk: the restored alert carries its risks."""
    if previous is None:
        if predecessor is not None and predecessor.eligible and not evaluation.eligible:
            return Transition.LOST
        return Transition.FIRST_SEEN
    warnings = [w.value for w in evaluation.warnings]
    if not (_targeted(previous.warnings) and _targeted(warnings)):
        return Transition.UNCHANGED if previous.fingerprint == digest else Transition.CHANGED
    moved = classify(previous.eligible, previous.fingerprint, evaluation.eligible, digest)
    if moved in (Transition.CHANGED, Transition.UNCHANGED) and previous.eligible:
        if evaluation.at_risk and not previous.at_risk:
            return Transition.AT_RISK
        if previous.at_risk and not evaluation.at_risk:
            return Transition.AT_RISK_CLEARED
    return moved


def event_id(device_object_id: str, version: int, transition: Transition) -> str:
    """One id per (device, state version, transition): redeliveries republish the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{device_object_id}:{version}:{transition.value}"))


# What Intune's compliance policy states can explain: a verdict of not compliant, no verdict yet
# (policies still in error or unknown), or Intune's own evaluation error.
_COMPLIANCE_CODES = frozenset(
    {Reason.NOT_COMPLIANT.value, Reason.COMPLIANCE_UNKNOWN.value, Warning_.COMPLIANCE_ERROR.value}
)


def explained_by_compliance(reasons: Iterable[str], warnings: Iterable[str]) -> bool:
    """Whether Intune's failing policies and settings say why the device is ineligible."""
    return not _COMPLIANCE_CODES.isdisjoint([*reasons, *warnings])


def compliance_details_for(
    transition: Transition, evaluation: Evaluation, managed: ManagedDeviceSnapshot | None
) -> str | None:
    """The Intune managed device id whose failing policies and settings the alert should carry,
    or None. Only a `lost` explained by compliance asks: a restored device has nothing failing,
    and any other loss (deleted, disabled, not joined) is not Intune's to explain."""
    if transition is not Transition.LOST or managed is None or not managed.managed_device_id:
        return None
    if not explained_by_compliance(evaluation.reasons, evaluation.warnings):
        return None
    return managed.managed_device_id


def with_compliance(alert: dict[str, Any], details: ComplianceDetails) -> dict[str, Any]:
    """The alert with `data.compliance`: the failing policies and settings, or why Intune could
    not be read (the lists are then absent, not empty)."""
    return {**alert, "data": {**alert["data"], "compliance": details.to_json()}}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _risk(
    transition: Transition,
    evaluation: Evaluation,
    previous: PreviousVerdict,
    lead: timedelta,
    origin: Origin,
) -> dict[str, Any]:
    """data.risk: at_risk says which risks, when access ends and what to do; at_risk_cleared says
    which went away (and the deadline they had), with no advice."""
    if transition is Transition.AT_RISK:
        reasons = [r.value for r in evaluation.risk_reasons]
        deadline = evaluation.deadline
        advice = [{"reason": code, "action": risk_action(code, origin)} for code in reasons]
    else:
        # Nothing left to do about risks that went away.
        reasons, deadline, advice = list(previous.risk_reasons), previous.deadline, []
    return {
        "reasons": reasons,
        "deadline": _iso(deadline),
        "leadHours": max(1, round(lead.total_seconds() / 3600)),
        "advice": advice,
    }


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
    at_risk_lead: timedelta = timedelta(hours=72),
) -> dict[str, Any]:
    if transition not in EVENT_TYPES:
        raise ValueError(f"{transition} does not raise an alert")
    workload = compliance_workload(evaluation.management, managed)
    origin = Origin(
        join_type=evaluation.join_type.value,
        synced=device.on_premises_sync,
        removed_reason=device.removed_reason,
        management=evaluation.management.value,
        compliance_workload=workload,
    )
    reasons = [r.value for r in evaluation.reasons]
    alert: dict[str, Any] = {
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
                "ownership": device.device_ownership,
                "onPremisesSyncEnabled": device.on_premises_sync,
                "complianceWorkload": workload,
                "removedReason": device.removed_reason,
            },
            "previous": {
                "eligible": previous.eligible,
                "reasons": list(previous.reasons),
                "evaluatedAt": _iso(previous.evaluated_at),
                "objectId": previous.object_id,
            },
            "current": {
                "eligible": evaluation.eligible,
                "reasons": reasons,
                "warnings": [w.value for w in evaluation.warnings],
                "compliance": evaluation.compliance.value,
                "gracePeriodExpires": _iso(evaluation.grace_period_expires),
                "riskReasons": [r.value for r in evaluation.risk_reasons],
                "deadline": _iso(evaluation.deadline),
                "blockingPolicies": [p.to_json() for p in evaluation.blocking_policies],
                "reportOnlyFailures": [p.to_json() for p in evaluation.report_only_failures],
                "judgedBy": evaluation.judged_by,
                "summary": why(evaluation.policy.value, reasons),
                "advice": [{"reason": code, "action": action(code, origin)} for code in reasons],
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
    if transition in _RISK_EVENTS:
        alert["data"]["risk"] = _risk(transition, evaluation, previous, at_risk_lead, origin)
    return alert


def application_properties(alert: dict[str, Any]) -> dict[str, str | int]:
    """What subscriptions filter on without parsing bodies (SQL filters on these names). The
    compliance details stay in the body: only their count is a property, so properties stay
    small whatever Intune reports."""
    data = alert["data"]
    reasons = data["current"]["reasons"] or data["previous"]["reasons"]
    props: dict[str, str | int] = {
        "type": alert["type"],
        "severity": data["severity"],
        "joinType": data["device"]["joinType"],
        "reasons": ",".join(reasons),
        "policy": data["policy"],
        "deviceId": data["device"]["objectId"],
    }
    risk = data.get("risk") or {
        "reasons": data["current"].get("riskReasons") or [],
        "deadline": data["current"].get("deadline"),
    }
    props["riskReasons"] = ",".join(risk["reasons"])
    props["deadline"] = risk["deadline"] or ""
    settings = data.get("compliance", {}).get("failingSettings")
    if settings is not None:
        props["failingSettings"] = len(settings)
    return props
