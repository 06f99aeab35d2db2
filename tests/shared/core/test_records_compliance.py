"""DeviceState keeps the failing compliance settings the last lost alert named while the device
stays ineligible, and drops them once it is eligible again (shared.core.records.next_state)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.core.models import Transition
from shared.core.records import next_state
from tests.shared.views.fleet_data import ineligible, record, state

DETAILS = '{"failingPolicies": [], "failingSettings": []}'


def test_the_alert_s_details_are_stored_with_the_version_that_raised_it() -> None:
    lost = next_state(state(record()), ineligible(), Transition.LOST, "{}", "", DETAILS)
    assert lost.compliance_details == DETAILS


@pytest.mark.parametrize("transition", [Transition.CHANGED, Transition.UNCHANGED])
def test_a_later_version_without_an_alert_keeps_them_while_ineligible(
    transition: Transition,
) -> None:
    before = replace(state(ineligible()), compliance_details=DETAILS)
    assert next_state(before, ineligible(), transition, "").compliance_details == DETAILS


def test_eligible_again_means_nothing_fails_any_more() -> None:
    before = replace(state(ineligible()), compliance_details=DETAILS)
    assert next_state(before, record(), Transition.RESTORED, "").compliance_details == ""
    assert next_state(before, record(), Transition.CHANGED, "").compliance_details == ""


def test_a_new_loss_replaces_them() -> None:
    before = replace(state(ineligible()), compliance_details=DETAILS)
    assert next_state(before, ineligible(), Transition.LOST, "", "", "").compliance_details == ""
