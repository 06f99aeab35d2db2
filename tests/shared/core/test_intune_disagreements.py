"""Issue 13 item 7: when Intune's record and Entra's isCompliant disagree, Conditional Access
reads Entra. complianceState members (microsoft-graph-docs-contrib
`intune-devices-compliancestate.md`): "error | 4 | Error.", "conflict | 3 | Conflict with other
rules.", "inGracePeriod | 254 | Device is non-compliant but still has access to corporate
resources". memdocs `compliance-policy-monitor.md`: with a setting in Error "the compliance state
of the device remains unchanged for up to seven days ... If a setting still has a status of Error
after seven days, the device becomes Not compliant immediately. Grace periods don't apply"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.core import explain
from shared.core.evaluation import EvaluationOptions, evaluate
from shared.core.models import Compliance, Policy, Reason, Warning_
from shared.core.snapshots import device_from_json, managed_device_from_json

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
GRACE_ENDS = NOW + timedelta(days=3)
DEVICE: dict[str, Any] = {
    "id": "000005c3-b7a6-4c61-89fc-80bf5ccfc366",
    "deviceId": "6fa60d52-01e7-4b18-8055-4759461fc16b",
    "displayName": "DESKTOP-858MANH",
    "accountEnabled": True,
    "trustType": "AzureAd",
    "operatingSystem": "Windows",
    "operatingSystemVersion": "10.0.19043.1165",
}


def judge(is_compliant: bool | None, state: str):
    managed = managed_device_from_json(
        {
            "@odata.type": "#microsoft.graph.managedDevice",
            "id": "705c034c-034c-705c-4c03-5c704c035c70",
            "complianceState": state,
            "managementAgent": "mdm",
            "azureADDeviceId": DEVICE["deviceId"],
            "lastSyncDateTime": NOW.isoformat(),
            "complianceGracePeriodExpirationDateTime": GRACE_ENDS.isoformat(),
        }
    )
    device = device_from_json({**DEVICE, "isCompliant": is_compliant})
    return evaluate(device, managed, EvaluationOptions(Policy.COMPLIANT), NOW)


@pytest.mark.parametrize("state", ["error", "conflict"])
def test_error_or_conflict_against_a_compliant_entra_is_flagged(state: str) -> None:
    result = judge(True, state)
    assert result.eligible, "CA reads isCompliant: access holds for now"
    assert Warning_.COMPLIANCE_ERROR in result.warnings
    assert "7 days" in explain.warning(Warning_.COMPLIANCE_ERROR).meaning


@pytest.mark.parametrize("state", ["error", "conflict"])
def test_error_against_a_noncompliant_entra_is_just_noncompliant(state: str) -> None:
    result = judge(False, state)
    assert result.reasons == (Reason.NOT_COMPLIANT,)
    assert Warning_.COMPLIANCE_ERROR not in result.warnings


@pytest.mark.parametrize("is_compliant", [False, None])
def test_a_grace_period_entra_does_not_honour_says_access_has_ended(
    is_compliant: bool | None,
) -> None:
    result = judge(is_compliant, "inGracePeriod")
    assert not result.eligible
    assert result.compliance is not Compliance.IN_GRACE_PERIOD
    assert Warning_.GRACE_PERIOD_WITHOUT_ACCESS in result.warnings
    assert Warning_.COMPLIANCE_GRACE_PERIOD not in result.warnings
    assert result.grace_period_expires is None, "no deadline: access is already gone"
    assert "already ended" in explain.warning(Warning_.GRACE_PERIOD_WITHOUT_ACCESS).meaning


def test_a_grace_period_entra_honours_keeps_access_until_it_ends() -> None:
    result = judge(True, "inGracePeriod")
    assert result.eligible and result.compliance is Compliance.IN_GRACE_PERIOD
    assert result.warnings == (Warning_.COMPLIANCE_GRACE_PERIOD,)
    assert result.grace_period_expires == GRACE_ENDS


@pytest.mark.parametrize(
    ("is_compliant", "state"),
    [(True, "compliant"), (False, "noncompliant"), (None, "unknown"), (True, "configManager")],
)
def test_agreement_is_not_flagged(is_compliant: bool | None, state: str) -> None:
    flags = {
        Warning_.COMPLIANCE_ERROR,
        Warning_.COMPLIANCE_MISMATCH,
        Warning_.GRACE_PERIOD_WITHOUT_ACCESS,
    }
    assert not flags & set(judge(is_compliant, state).warnings)
