"""What remediation decides for an early warning (pure): a syncDevice only for the risks a
check-in can end, only for a device whose last check-in is old, and in the same modes as for
lost."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.consumers.remediation_log import LogEntry
from shared.consumers.remediation_plan import (
    NEVER_SYNCED,
    OLD_CHECKIN,
    RISKS_SYNCED,
    Mode,
    Outcome,
    Skip,
    plan,
    wants_checkin,
)
from shared.core.alert_view import AlertView, parse_alert
from shared.core.models import RiskReason
from tests.alert_helpers import T0
from tests.shared.consumers.risk_alerts import ALL_RISKS, risk_alert

NOW = T0
OLD = NOW - timedelta(days=3)
RECENT = NOW - timedelta(hours=2)


def view(*reasons: str, **kwargs: Any) -> AlertView:
    workload = kwargs.pop("workload", None)
    body = risk_alert(reasons, **kwargs)
    body["data"]["device"]["complianceWorkload"] = workload
    return parse_alert(body)


def test_every_risk_is_either_synced_or_never_synced() -> None:
    assert set(RISKS_SYNCED) | set(NEVER_SYNCED) == set(ALL_RISKS)
    assert not set(RISKS_SYNCED) & set(NEVER_SYNCED)


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("reason", ALL_RISKS)
@pytest.mark.parametrize("checkin", ["old", "recent", "unknown"])
def test_plan_for_each_risk(mode: Mode, reason: str, checkin: str) -> None:
    last = {"old": OLD, "recent": RECENT, "unknown": None}[checkin]
    decided = plan(view(reason), mode, last, NOW)
    if reason in NEVER_SYNCED:
        assert (decided.outcome, decided.code) == (Outcome.SKIPPED, Skip.NO_FIX_FOR_REASONS)
        assert decided.reason == f"never synced for {reason} ({NEVER_SYNCED[reason]})"
    elif checkin == "unknown":
        assert (decided.outcome, decided.code) == (Outcome.SKIPPED, Skip.CHECKIN_UNKNOWN)
    elif checkin == "recent":
        assert (decided.outcome, decided.code) == (Outcome.SKIPPED, Skip.CHECKIN_RECENT)
        assert "checked in 2 hours ago (under 8 hours, Intune's routine check-in)" in (
            decided.reason
        )
    else:
        expected = {
            Mode.OFF: (Outcome.SKIPPED, Skip.MODE_OFF),
            Mode.DRY_RUN: (Outcome.DRY_RUN, "syncDevice"),
            Mode.ON: (Outcome.CLAIMED, "syncDevice"),
        }[mode]
        assert (decided.outcome, decided.code) == expected
        assert f"Intune syncDevice for {reason} (last check-in 3 days 0 hours ago)" in (
            decided.reason
        )
    assert wants_checkin(view(reason)) is (reason in RISKS_SYNCED)


@pytest.mark.parametrize(
    ("since", "acts"),
    [
        (OLD_CHECKIN - timedelta(seconds=1), False),
        (OLD_CHECKIN, True),
        (timedelta(days=29), True),
        (timedelta(0), False),
        (-timedelta(minutes=5), False),  # a check-in stamped after our clock: just seen
    ],
)
def test_old_means_at_least_one_routine_check_in_missed(since: timedelta, acts: bool) -> None:
    decided = plan(view("GRACE_PERIOD_ENDING"), Mode.ON, NOW - since, NOW)
    assert decided.acts is acts


@pytest.mark.parametrize("never", sorted(NEVER_SYNCED))
@pytest.mark.parametrize("synced", RISKS_SYNCED)
def test_a_risk_never_synced_wins_over_one_that_would_be(never: str, synced: str) -> None:
    alert = view(synced, never)
    decided = plan(alert, Mode.ON, OLD, NOW)
    assert (decided.outcome, decided.code) == (Outcome.SKIPPED, Skip.NO_FIX_FOR_REASONS)
    assert never in decided.reason and synced not in decided.reason
    assert not wants_checkin(alert)


@pytest.mark.parametrize(
    ("device", "skip"),
    [
        ({"management": "exchange"}, Skip.NOT_INTUNE_MANAGED),
        ({"management": "jamf"}, Skip.NOT_INTUNE_MANAGED),
        ({"management": "unmanaged", "managed_device_id": None}, Skip.NOT_INTUNE_MANAGED),
        ({"management": "intune", "managed_device_id": None}, Skip.NOT_INTUNE_MANAGED),
        ({"management": "co_managed"}, Skip.COMPLIANCE_NOT_WITH_INTUNE),
        (
            {"management": "co_managed", "workload": "configuration_manager"},
            Skip.COMPLIANCE_NOT_WITH_INTUNE,
        ),
    ],
)
@pytest.mark.parametrize("reason", RISKS_SYNCED)
def test_only_devices_whose_compliance_intune_evaluates_are_synced(
    device: dict[str, Any], skip: Skip, reason: str
) -> None:
    alert = view(reason, **device)
    assert (plan(alert, Mode.ON, OLD, NOW).code) == skip
    assert not wants_checkin(alert)


@pytest.mark.parametrize("reason", RISKS_SYNCED)
def test_a_co_managed_device_with_the_workload_on_intune_is_synced(reason: str) -> None:
    alert = view(reason, management="co_managed", workload="intune")
    assert plan(alert, Mode.ON, OLD, NOW).acts and wants_checkin(alert)


@pytest.mark.parametrize("reason", ALL_RISKS)
def test_a_cleared_risk_needs_nothing(reason: str) -> None:
    alert = view(reason, cleared=True)
    decided = plan(alert, Mode.ON, OLD, NOW)
    assert (decided.outcome, decided.code) == (Outcome.SKIPPED, Skip.RISK_CLEARED)
    assert not wants_checkin(alert)


def test_the_log_row_records_the_risks_as_the_alerts_reasons() -> None:
    alert = view(RiskReason.GRACE_PERIOD_ENDING, RiskReason.CHECKIN_OVERDUE)
    entry = LogEntry.decided(alert, Mode.ON, plan(alert, Mode.ON, OLD, NOW), datetime.now())
    assert entry.reasons == "GRACE_PERIOD_ENDING,CHECKIN_OVERDUE"
    assert entry.alert_type == "devicemon.eligibility.at_risk"
