"""Early-warning alerts (at_risk, at_risk_cleared) and policy-judged lost alerts as the topic
carries them, built from the contract in docs/alerts.md and validated against
docs/alert.schema.json, for the consumers' tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from shared.core.models import RiskReason
from tests.alert_helpers import ALERT_VALIDATOR, T0, iso, make_alert

ALL_RISKS = tuple(r.value for r in RiskReason)
# What Intune's grace schedule or validity period leaves: a deadline for every risk but the
# mismatch, whose end comes whenever Entra ID catches up with Intune.
DEADLINE = T0 + timedelta(days=2, hours=5)
# Advice worded apart from shared/core/explain.py so a card shows the alert's own advice.
ADVICE = {
    "GRACE_PERIOD_ENDING": "Ask Adele to turn BitLocker on and sync from Company Portal.",
    "CHECKIN_OVERDUE": "Ask Adele to bring the laptop online and sync it.",
    "COMPLIANCE_ERROR_PENDING": "Open the setting in Error in the Intune device report.",
    "INTUNE_ENTRA_MISMATCH": "Treat it as noncompliant now and fix the failing setting.",
}


def policy(name: str, *conditional_on: str, reasons: tuple[str, ...] = ("NOT_COMPLIANT",)) -> Any:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "displayName": name,
        "reasons": list(reasons),
        "conditionalOn": list(conditional_on),
    }


def with_policies(
    alert: dict[str, Any],
    blocking: list[dict[str, Any]],
    report_only: list[dict[str, Any]] | None = None,
    judged_by: str = "ca_policies",
) -> dict[str, Any]:
    current = alert["data"]["current"]
    current.setdefault("riskReasons", [])
    current.setdefault("deadline", None)
    current.update(
        blockingPolicies=blocking, reportOnlyFailures=report_only or [], judgedBy=judged_by
    )
    ALERT_VALIDATOR.validate(alert)
    return alert


def risk_alert(
    reasons: tuple[str, ...] = ("GRACE_PERIOD_ENDING",),
    *,
    cleared: bool = False,
    deadline: datetime | None = DEADLINE,
    at: datetime = T0,
    lead_hours: int = 72,
    source: str = "intune_watch",
    blocking: list[dict[str, Any]] | None = None,
    **device: Any,
) -> dict[str, Any]:
    """An at_risk alert (or, with `cleared`, the at_risk_cleared that ends its episode)."""
    alert = make_alert(lost=False, reasons=(), at=at, source="sync", **device)
    data = alert["data"]
    kind = "at_risk_cleared" if cleared else "at_risk"
    alert["type"] = f"devicemon.eligibility.{kind}"
    data["severity"] = "info" if cleared else "warning"
    data["previous"]["eligible"] = True
    data["detection"]["source"] = source
    grace = "GRACE_PERIOD_ENDING" in reasons and not cleared
    data["current"].update(
        compliance="in_grace_period" if grace else "compliant",
        gracePeriodExpires=iso(deadline) if grace and deadline else None,
        riskReasons=[] if cleared else list(reasons),
        deadline=None if cleared or deadline is None else iso(deadline),
        blockingPolicies=blocking or [],
        reportOnlyFailures=[],
        judgedBy="ca_policies" if blocking else "ca_policy_setting",
    )
    data["risk"] = {
        "reasons": list(reasons),
        "deadline": iso(deadline) if deadline else None,
        "leadHours": lead_hours,
        "advice": [] if cleared else [{"reason": r, "action": ADVICE[r]} for r in reasons],
    }
    ALERT_VALIDATOR.validate(alert)
    return alert
