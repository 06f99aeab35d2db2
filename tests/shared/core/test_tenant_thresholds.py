"""The tenant's compliance settings in evaluation: check-in validity, secureByDefault, staleness.

Expected values are written out from the docs' rules (memdocs device-compliance-get-started.md:
a device that has not checked in within the validity period is marked not compliant; entra-docs
manage-stale-devices.md: nothing younger than 21 days is stale), not derived from the code.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.core.evaluation import EvaluationOptions, classify, evaluate, fingerprint
from shared.core.models import ManagedDeviceSnapshot, Transition, Warning_
from shared.core.tenant_settings import (
    DEFAULT,
    KEPT,
    READ,
    TenantSettings,
    TenantSettingsError,
    checkin_warning_lead,
    parse_settings,
)
from shared.settings import Settings, SettingsError
from tests.shared.core.test_evaluation import NOW, device

HOUR = timedelta(hours=1)


def managed(last_sync: datetime | None, **overrides: object) -> ManagedDeviceSnapshot:
    return ManagedDeviceSnapshot(
        "md-1",
        compliance_state="compliant",
        management_agent="mdm",
        last_sync=last_sync,
        **overrides,  # type: ignore[arg-type]
    )


def options(days: int, secure: bool = False, warning_days: int = 7) -> EvaluationOptions:
    return EvaluationOptions(
        tenant=TenantSettings(days, secure, NOW - timedelta(days=1), READ),
        checkin_warning_days=warning_days,
    )


# Days without a check-in after which the warning fires, worked out by hand from the rule
# "less than min(7 days, half the period) left": 10 -> 5, 30 -> 23, 120 -> 113, 1 -> 0.5.
WARN_AFTER_DAYS = {1: 0.5, 10: 5, 30: 23, 120: 113}


@pytest.mark.parametrize("threshold", sorted(WARN_AFTER_DAYS))
@pytest.mark.parametrize(
    ("offset", "warned"),
    [(-HOUR, False), (-timedelta(seconds=1), False), (timedelta(0), True), (HOUR, True)],
)
def test_checkin_warning_around_its_boundary(
    threshold: int, offset: timedelta, warned: bool
) -> None:
    age = timedelta(days=WARN_AFTER_DAYS[threshold]) + offset
    result = evaluate(device(), managed(NOW - age), options(threshold), NOW)
    assert (Warning_.INTUNE_CHECKIN_STALE in result.warnings) is warned
    assert result.eligible  # a warning, not a verdict: Entra's isCompliant still decides


@pytest.mark.parametrize("threshold", [10, 30, 120])
@pytest.mark.parametrize("age_days", [0, 4, 9, 11, 29, 31, 119, 121])
def test_the_deadline_is_the_last_check_in_plus_the_tenant_period(
    threshold: int, age_days: int
) -> None:
    last_sync = NOW - timedelta(days=age_days)
    result = evaluate(device(), managed(last_sync), options(threshold), NOW)
    assert result.checkin_deadline == last_sync + timedelta(days=threshold)
    past_deadline = age_days >= threshold
    if past_deadline:  # whatever the lead, a device past its deadline is warned about
        assert Warning_.INTUNE_CHECKIN_STALE in result.warnings


def test_thirty_days_is_no_longer_the_first_warning_under_the_default() -> None:
    # Before the tenant setting was read the warning fired at 30 days: the day Intune already
    # marks the device noncompliant. 25 days without a check-in is now warned about.
    result = evaluate(device(), managed(NOW - timedelta(days=25)), options(30), NOW)
    assert Warning_.INTUNE_CHECKIN_STALE in result.warnings


def test_a_tenant_changing_its_threshold_changes_the_verdict_on_the_same_facts() -> None:
    facts = device(), managed(NOW - timedelta(days=8))
    under_30 = evaluate(*facts, options(30), NOW)
    under_10 = evaluate(*facts, options(10), NOW)
    assert Warning_.INTUNE_CHECKIN_STALE not in under_30.warnings
    assert Warning_.INTUNE_CHECKIN_STALE in under_10.warnings
    assert under_10.checkin_deadline == NOW + timedelta(days=2)
    assert under_30.checkin_deadline == NOW + timedelta(days=22)
    # The new warning is worth a history row: the fingerprints differ.
    assert fingerprint(*facts, under_10) != fingerprint(*facts, under_30)


def test_without_tenant_settings_the_configured_fallback_period_is_used() -> None:
    result = evaluate(
        device(),
        managed(NOW - timedelta(days=6)),
        EvaluationOptions(intune_checkin_stale_days=10),
        NOW,
    )
    assert result.checkin_deadline == NOW + timedelta(days=4)
    assert Warning_.INTUNE_CHECKIN_STALE in result.warnings


@pytest.mark.parametrize("last_sync", [None])
def test_no_deadline_without_a_check_in_time(last_sync: datetime | None) -> None:
    result = evaluate(device(), managed(last_sync), options(10), NOW)
    assert result.checkin_deadline is None
    assert Warning_.INTUNE_CHECKIN_STALE not in result.warnings
    assert evaluate(device(), None, options(10), NOW).checkin_deadline is None


def test_the_deadline_moves_with_each_check_in_without_a_history_row() -> None:
    first = managed(NOW - timedelta(hours=9))
    later = managed(NOW - timedelta(hours=1))
    a, b = (evaluate(device(), m, options(30), NOW) for m in (first, later))
    assert a.checkin_deadline != b.checkin_deadline
    assert fingerprint(device(), first, a) == fingerprint(device(), later, b)


@pytest.mark.parametrize(("threshold", "warning_days", "lead_hours"), [
    (1, 7, 12), (2, 7, 24), (10, 7, 120), (14, 7, 168), (30, 7, 168), (120, 7, 168),
    (30, 3, 72), (10, 1, 24),
])  # fmt: skip
def test_warning_lead(threshold: int, warning_days: int, lead_hours: int) -> None:
    assert checkin_warning_lead(threshold, warning_days) == timedelta(hours=lead_hours)


# --- secureByDefault -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secure", "assigned", "is_compliant", "warned"),
    [
        (False, False, True, True),  # compliant because nothing checks it
        (True, False, True, False),  # the tenant would mark it not compliant: Entra soon follows
        (True, False, False, False),  # NOT_COMPLIANT already says it; the setting names why
        (False, False, False, False),  # not compliant for another reason
        (False, True, True, False),
        (True, True, True, False),
        (False, None, True, False),  # not read: no claim
        (True, None, True, False),
    ],
)
def test_no_compliance_policy_follows_secure_by_default(
    secure: bool, assigned: bool | None, is_compliant: bool, warned: bool
) -> None:
    result = evaluate(
        device(is_compliant=is_compliant),
        managed(NOW - HOUR, compliance_policy_assigned=assigned),
        options(30, secure=secure),
        NOW,
    )
    assert (Warning_.NO_COMPLIANCE_POLICY in result.warnings) is warned
    assert result.eligible is is_compliant  # the warning never changes eligibility


# --- stale sign-in --------------------------------------------------------------------------


@pytest.mark.parametrize("configured", [1, 7, 14, 20, 21])
@pytest.mark.parametrize(("age_days", "stale"), [(14, False), (20, False), (21, False), (22, True)])
def test_stale_sign_in_is_never_below_21_days(configured: int, age_days: int, stale: bool) -> None:
    sign_in = NOW - timedelta(days=age_days)
    result = evaluate(
        device(approximate_last_sign_in=sign_in),
        None,
        EvaluationOptions(stale_sign_in_days=configured),
        NOW,
    )
    assert (Warning_.STALE_SIGN_IN in result.warnings) is stale


@pytest.mark.parametrize("age_days", [22, 90, 400])
def test_a_stale_device_is_never_lost(age_days: int) -> None:
    fresh = evaluate(device(), None, EvaluationOptions(stale_sign_in_days=21), NOW)
    stale_device = device(approximate_last_sign_in=NOW - timedelta(days=age_days))
    stale = evaluate(stale_device, None, EvaluationOptions(stale_sign_in_days=21), NOW)
    assert Warning_.STALE_SIGN_IN in stale.warnings and stale.eligible
    transition = classify(
        fresh.eligible,
        fingerprint(device(), None, fresh),
        stale.eligible,
        fingerprint(stale_device, None, stale),
    )
    assert transition is Transition.CHANGED


@pytest.mark.parametrize("value", ["1", "14", "20"])
def test_settings_refuse_a_stale_sign_in_threshold_below_21_days(value: str) -> None:
    env = {"GRAPH_CLIENT_STATE": "s", "STALE_SIGN_IN_DAYS": value}
    with pytest.raises(SettingsError, match=r"STALE_SIGN_IN_DAYS=\d+ is below 21.*14 days"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "STALE_SIGN_IN_DAYS": "21"}).stale_sign_in_days == 21


@pytest.mark.parametrize(
    ("name", "value"),
    [("INTUNE_CHECKIN_STALE_DAYS", "121"), ("INTUNE_CHECKIN_STALE_DAYS", "0"),
     ("INTUNE_CHECKIN_WARN_DAYS", "0"), ("INTUNE_CHECKIN_WARN_DAYS", "61")],
)  # fmt: skip
def test_settings_refuse_check_in_values_outside_intunes_range(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"GRAPH_CLIENT_STATE": "s", name: value})


# --- Graph's answer -------------------------------------------------------------------------

# The JSON representation of deviceManagementSettings (intune-deviceconfig-devicemanagementsettings.md).
DOC_BODY = {
    "@odata.type": "#microsoft.graph.deviceManagementSettings",
    "deviceComplianceCheckinThresholdDays": 10,
    "isScheduledActionEnabled": True,
    "secureByDefault": True,
}


def test_parse_the_documented_shape() -> None:
    parsed = parse_settings(DOC_BODY, NOW)
    assert (parsed.checkin_threshold_days, parsed.secure_by_default) == (10, True)
    assert (parsed.read_at, parsed.status) == (NOW, READ)


@pytest.mark.parametrize(
    "change",
    [
        {"deviceComplianceCheckinThresholdDays": 0},
        {"deviceComplianceCheckinThresholdDays": 121},
        {"deviceComplianceCheckinThresholdDays": "30"},
        {"deviceComplianceCheckinThresholdDays": True},
        {"deviceComplianceCheckinThresholdDays": None},
        {"secureByDefault": "true"},
    ],
)
def test_parse_refuses_what_the_docs_do_not_allow(change: dict[str, object]) -> None:
    with pytest.raises(TenantSettingsError):
        parse_settings({**DOC_BODY, **change}, NOW)


def test_parse_refuses_a_body_that_is_not_an_object() -> None:
    with pytest.raises(TenantSettingsError):
        parse_settings([DOC_BODY], NOW)


def test_kept_values_say_whether_anything_was_ever_read() -> None:
    never = TenantSettings().kept("403")
    assert (never.status, never.checkin_threshold_days, never.note) == (DEFAULT, 30, "403")
    read = parse_settings(DOC_BODY, NOW).kept("timeout")
    assert (read.status, read.checkin_threshold_days, read.read_at) == (KEPT, 10, NOW)
