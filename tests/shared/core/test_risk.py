"""At-risk devices and their deadlines (issue 12 items 3 and 4; shared/core/risk.py).

Devices and Intune records are Graph JSON in the documented shapes (microsoft-graph-docs-contrib
device and intune-devices-manageddevice); the expected deadlines, warning times and next checks
are worked out by hand from the rules docs/reason-codes.md states: the grace expiry (memdocs
actions-for-noncompliance.md), last check-in + validity period (device-compliance-get-started.md),
seven days in Error (compliance-policy-monitor.md), each warned `lead` ahead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.core.ca_policies import compile_policies
from shared.core.evaluation import EvaluationOptions, evaluate, fingerprint
from shared.core.models import Policy, RiskReason
from shared.core.policy_eligibility import CompiledPolicySet
from shared.core.risk import FOLLOW_UPS, Risk, assess
from shared.core.snapshots import device_from_json, managed_device_from_json
from shared.core.tenant_settings import READ, TenantSettings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LEAD = timedelta(hours=72)
# intune()'s default check-in (an hour ago) under a 30-day period is warned 72 h before it ends:
# what is left to look at once every other risk is behind.
CHECKIN_WARNING = NOW - HOUR + 30 * DAY - LEAD

ENTRA_JOINED: dict[str, Any] = {
    "id": "000005c3-b7a6-4c61-89fc-80bf5ccfc366",
    "deviceId": "6fa60d52-01e7-4b18-8055-4759461fc16b",
    "displayName": "DESKTOP-858MANH",
    "accountEnabled": True,
    "isCompliant": True,
    "isManaged": True,
    "trustType": "AzureAd",
    "operatingSystem": "Windows",
    "operatingSystemVersion": "10.0.19043.1165",
    "profileType": "RegisteredDevice",
    "mdmAppId": "0000000a-0000-0000-c000-000000000000",
}
HYBRID = {**ENTRA_JOINED, "trustType": "ServerAd", "alternativeSecurityIds": [{"type": 2}]}
IPHONE = {**ENTRA_JOINED, "trustType": "Workplace", "operatingSystem": "iOS"}
IPHONE["operatingSystemVersion"] = "17.5"


def intune(state: str, last_sync: datetime = NOW - HOUR, **more: Any) -> dict[str, Any]:
    return {
        "id": "705c034c-034c-705c-4c03-5c704c035c70",
        "azureADDeviceId": ENTRA_JOINED["deviceId"],
        "complianceState": state,
        "managementAgent": "mdm",
        "lastSyncDateTime": last_sync.isoformat().replace("+00:00", "Z"),
        "userPrincipalName": "adele.vance@contoso.example",
        **more,
    }


def in_grace(expires: datetime) -> dict[str, Any]:
    return intune(
        "inGracePeriod",
        complianceGracePeriodExpirationDateTime=expires.isoformat().replace("+00:00", "Z"),
    )


def options(policy: Policy = Policy.COMPLIANT, days: int = 30, lead: timedelta = LEAD) -> Any:
    return EvaluationOptions(
        policy, tenant=TenantSettings(days, False, NOW - DAY, READ), at_risk_lead=lead
    )


def judge(
    device: dict[str, Any],
    managed: dict[str, Any] | None,
    opts: EvaluationOptions | None = None,
    now: datetime = NOW,
    error_since: datetime | None = None,
) -> Any:
    return evaluate(
        device_from_json(device),
        managed_device_from_json(managed) if managed else None,
        opts or options(),
        now,
        compliance_error_since=error_since,
    )


# --- GRACE_PERIOD_ENDING ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "at_risk", "next_check"),
    [
        (LEAD + HOUR, False, HOUR),  # warned in an hour, at expiry - lead
        (LEAD, True, LEAD),  # the warning time itself: at risk, next look at the deadline
        (HOUR, True, HOUR),
        (timedelta(0), True, FOLLOW_UPS[0]),  # the deadline: the first follow-up
        (-timedelta(minutes=10), True, FOLLOW_UPS[1] - timedelta(minutes=10)),
        (-(FOLLOW_UPS[2] + HOUR), True, None),  # follow-ups passed: the watch takes over
    ],
)
def test_a_grace_period_is_warned_lead_ahead_and_kept_until_it_shows(
    left: timedelta, at_risk: bool, next_check: timedelta | None
) -> None:
    expires = NOW + left
    result = judge(ENTRA_JOINED, in_grace(expires))
    assert result.eligible
    grace = RiskReason.GRACE_PERIOD_ENDING
    assert (grace in result.risk_reasons) is at_risk
    assert result.deadline == (expires if at_risk else None)
    assert result.next_check == (CHECKIN_WARNING if next_check is None else NOW + next_check)


@pytest.mark.parametrize(
    ("device", "policy", "at_risk"),
    [
        (ENTRA_JOINED, Policy.COMPLIANT, True),
        (ENTRA_JOINED, Policy.COMPLIANT_OR_HYBRID, True),  # Entra joined: compliance is the way
        (HYBRID, Policy.COMPLIANT_OR_HYBRID, False),  # the hybrid control keeps access
        (HYBRID, Policy.HYBRID, False),  # compliance does not matter at all
        (HYBRID, Policy.COMPLIANT_AND_HYBRID, True),
        (IPHONE, Policy.COMPLIANT_OR_HYBRID, True),  # hybrid is Windows only
        (IPHONE, Policy.HYBRID, False),  # not targeted: never at risk
    ],
)
def test_only_a_loss_that_costs_eligibility_is_a_risk(
    device: dict[str, Any], policy: Policy, at_risk: bool
) -> None:
    result = judge(device, in_grace(NOW + HOUR), options(policy))
    assert result.at_risk is at_risk
    assert (result.deadline is not None) is at_risk


def test_a_grace_period_entra_does_not_honour_is_no_risk_but_a_loss() -> None:
    result = judge({**ENTRA_JOINED, "isCompliant": False}, in_grace(NOW + HOUR))
    assert not result.eligible
    assert (result.risk_reasons, result.deadline, result.next_check) == ((), None, None)


@pytest.mark.parametrize("patch", [{"accountEnabled": False}, {"isCompliant": None}])
def test_an_ineligible_device_is_never_at_risk(patch: dict[str, Any]) -> None:
    result = judge({**ENTRA_JOINED, **patch}, in_grace(NOW + HOUR))
    assert not result.eligible and not result.at_risk and result.next_check is None


# --- CHECKIN_OVERDUE ---------------------------------------------------------------------------


# (validity period in days, lead, hours since the last check-in, at risk, hours to next check),
# by hand: warned at deadline - min(lead, period / 2).
CHECKINS = [
    (30, LEAD, 24 * 27 - 1, False, 1),  # 30 d period, 72 h lead: warned after 27 days
    (30, LEAD, 24 * 27, True, 72),
    (10, LEAD, 24 * 7, True, 72),  # 10 d: after 7 days (72 h < 5 days)
    (10, timedelta(days=6), 24 * 5 - 1, False, 1),  # lead 6 d > half of 10 d: after 5 days
    (10, timedelta(days=6), 24 * 5, True, 120),
    (1, LEAD, 11, False, 1),  # 1 d: half a day
    (1, LEAD, 12, True, 12),
    (1, LEAD, 24, True, 5 / 60),  # at the deadline: the first follow-up
]


@pytest.mark.parametrize(("days", "lead", "silent_hours", "at_risk", "next_hours"), CHECKINS)
def test_a_device_that_stops_checking_in_is_warned_before_its_validity_ends(
    days: int, lead: timedelta, silent_hours: int, at_risk: bool, next_hours: float
) -> None:
    last_sync = NOW - silent_hours * HOUR
    result = judge(ENTRA_JOINED, intune("compliant", last_sync), options(days=days, lead=lead))
    assert (RiskReason.CHECKIN_OVERDUE in result.risk_reasons) is at_risk
    assert result.deadline == (last_sync + days * DAY if at_risk else None)
    assert result.next_check == NOW + next_hours * HOUR


def test_a_tenant_shortening_its_period_brings_the_deadline_forward() -> None:
    facts = (ENTRA_JOINED, intune("compliant", NOW - 8 * DAY))
    under_30, under_10 = judge(*facts, options(days=30)), judge(*facts, options(days=10))
    assert not under_30.at_risk and under_30.next_check == NOW + 19 * DAY
    assert under_10.risk_reasons == (RiskReason.CHECKIN_OVERDUE,)
    assert under_10.deadline == NOW + 2 * DAY


@pytest.mark.parametrize("agent", ["eas", "configurationManagerClient", "jamf"])
def test_check_in_validity_is_intune_s_only(agent: str) -> None:
    record = {**intune("compliant", NOW - 29 * DAY), "managementAgent": agent}
    result = judge(ENTRA_JOINED, record)
    assert RiskReason.CHECKIN_OVERDUE not in result.risk_reasons


# --- COMPLIANCE_ERROR_PENDING ------------------------------------------------------------------


def test_an_error_first_seen_now_counts_seven_days_from_now() -> None:
    result = judge(ENTRA_JOINED, intune("error"))
    assert result.compliance_error_since == NOW
    assert not result.at_risk  # seven days away, warned 72 h ahead
    assert result.next_check == NOW + 7 * DAY - LEAD


@pytest.mark.parametrize(
    ("seen_ago", "at_risk", "next_check"),
    [
        (4 * DAY - HOUR, False, HOUR),
        (4 * DAY, True, 3 * DAY),
        (7 * DAY, True, FOLLOW_UPS[0]),
        (7 * DAY + 3 * HOUR, True, None),
    ],
)
def test_an_error_kept_from_the_previous_record_reaches_its_seven_days(
    seen_ago: timedelta, at_risk: bool, next_check: timedelta | None
) -> None:
    since = NOW - seen_ago
    result = judge(ENTRA_JOINED, intune("error"), error_since=since)
    assert result.compliance_error_since == since
    assert (result.risk_reasons == (RiskReason.COMPLIANCE_ERROR_PENDING,)) is at_risk
    assert result.deadline == (since + 7 * DAY if at_risk else None)
    assert result.next_check == (CHECKIN_WARNING if next_check is None else NOW + next_check)


@pytest.mark.parametrize("state", ["compliant", "noncompliant", "inGracePeriod", "conflict"])
def test_leaving_the_error_state_forgets_when_it_began(state: str) -> None:
    result = judge(ENTRA_JOINED, intune(state), error_since=NOW - 2 * DAY)
    assert result.compliance_error_since is None
    assert RiskReason.COMPLIANCE_ERROR_PENDING not in result.risk_reasons


# --- INTUNE_ENTRA_MISMATCH and several at once ---------------------------------------------------


def test_intune_saying_noncompliant_puts_the_device_at_risk_at_once_with_no_deadline() -> None:
    result = judge(ENTRA_JOINED, intune("noncompliant"))
    assert result.eligible
    assert (result.risk_reasons, result.deadline) == ((RiskReason.INTUNE_ENTRA_MISMATCH,), None)
    assert result.next_check == CHECKIN_WARNING


def test_the_deadline_is_the_earliest_of_the_active_risks() -> None:
    last_sync = NOW - 28 * DAY  # validity ends in 2 days: at risk
    managed = {
        **in_grace(NOW + DAY),
        "lastSyncDateTime": last_sync.isoformat().replace("+00:00", "Z"),
    }
    result = judge(ENTRA_JOINED, managed)
    assert result.risk_reasons == (RiskReason.GRACE_PERIOD_ENDING, RiskReason.CHECKIN_OVERDUE)
    assert result.deadline == NOW + DAY
    assert result.next_check == NOW + DAY


def test_assess_orders_reasons_and_skips_what_lies_behind() -> None:
    risks = [
        Risk(RiskReason.INTUNE_ENTRA_MISMATCH, None, None),
        Risk(RiskReason.GRACE_PERIOD_ENDING, NOW + 2 * HOUR, NOW - HOUR),
        Risk(RiskReason.COMPLIANCE_ERROR_PENDING, NOW + 9 * DAY, NOW + 6 * DAY),
    ]
    found = assess(risks, NOW)
    assert found.reasons == (RiskReason.GRACE_PERIOD_ENDING, RiskReason.INTUNE_ENTRA_MISMATCH)
    assert (found.deadline, found.next_check) == (NOW + 2 * HOUR, NOW + 2 * HOUR)
    assert assess([], NOW).next_check is None
    behind = assess([Risk(RiskReason.GRACE_PERIOD_ENDING, NOW - 3 * HOUR, NOW - 4 * DAY)], NOW)
    assert (behind.reasons, behind.deadline) == ((RiskReason.GRACE_PERIOD_ENDING,), NOW - 3 * HOUR)
    assert behind.next_check is None


def test_the_schedule_alone_moves_no_fingerprint() -> None:
    device = device_from_json(ENTRA_JOINED)
    managed = managed_device_from_json(intune("compliant", NOW - DAY))
    later = managed_device_from_json(intune("compliant", NOW - HOUR))
    a = evaluate(device, managed, options(), NOW)
    b = evaluate(device, later, options(), NOW)
    assert a.next_check != b.next_check
    assert fingerprint(device, managed, a) == fingerprint(device, later, b)


# --- policy mode: the counterfactual goes through the tenant's policies too ----------------------


def ca_policy(number: int, controls: list[str], operator: str, platforms: list[str]) -> Any:
    """A conditionalAccessPolicy in Graph's shape (microsoft-graph-docs-contrib
    conditionalaccesspolicy.md, conditionalaccessgrantcontrols.md)."""
    return {
        "id": f"00000000-0000-4000-8000-0000000000{number:02d}",
        "displayName": f"CA{number:02d}",
        "state": "enabled",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["All"]},
            "platforms": {"includePlatforms": platforms},
        },
        "grantControls": {"operator": operator, "builtInControls": controls},
    }


@pytest.mark.parametrize(
    ("controls", "operator", "at_risk"),
    [
        (["compliantDevice"], "OR", True),
        # compliant or hybrid joined: the hybrid joined device keeps access through its join
        (["compliantDevice", "domainJoinedDevice"], "OR", False),
        (["compliantDevice", "domainJoinedDevice"], "AND", True),
        # a device control offered beside MFA is an alternative: losing compliance costs nothing
        (["mfa", "compliantDevice"], "OR", False),
    ],
)
def test_under_policy_mode_the_policies_decide_whether_a_loss_would_cost_access(
    controls: list[str], operator: str, at_risk: bool
) -> None:
    policies = CompiledPolicySet(
        tuple(compile_policies([ca_policy(1, controls, operator, ["windows"])])), NOW
    )
    result = evaluate(
        device_from_json(HYBRID),
        managed_device_from_json(in_grace(NOW + HOUR)),
        options(Policy.COMPLIANT),  # the setting alone would call every case at risk
        NOW,
        device_json=HYBRID,
        policies=policies,
    )
    assert result.eligible and result.judged_by == "ca_policies"
    assert result.at_risk is at_risk
    assert result.deadline == (NOW + HOUR if at_risk else None)
