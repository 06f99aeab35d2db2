"""The early-warning cards and the blocking policies on cards: valid Adaptive Cards 1.4 for
Workflows, saying when access ends, why, and who should do what, for every risk reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.consumers.noise import MassSummary
from shared.consumers.noise_cards import MASS_CLEARED, MASS_RISK_CAUSES, mass_card
from shared.consumers.risk_cards import WHO, at_risk_card, cleared_card, relative
from shared.consumers.teams_cards import alert_card
from shared.core import explain
from shared.core.alert_view import AlertFormatError, AlertView, parse_alert
from tests.alert_helpers import T0, make_alert
from tests.shared.consumers.risk_alerts import (
    ADVICE,
    ALL_RISKS,
    DEADLINE,
    policy,
    risk_alert,
    with_policies,
)
from tests.shared.consumers.test_teams_cards import HUGE, check, texts

NOW = T0  # the notifier's clock when it decides the card


def view(*reasons: str, **kwargs: Any) -> AlertView:
    return parse_alert(risk_alert(reasons or ("GRACE_PERIOD_ENDING",), **kwargs))


def banner(card: dict[str, Any]) -> tuple[str, str, str]:
    top = card["body"][0]
    return top["style"], top["items"][0]["text"], top["items"][1]["text"]


@pytest.mark.parametrize("reason", ALL_RISKS)
def test_the_at_risk_card_says_when_why_and_who_does_what(reason: str) -> None:
    card = at_risk_card(view(reason), NOW)
    check(card)
    words = texts(card)
    style, label, _ = banner(card)
    assert (style, label) == ("warning", "🟠 AT RISK")
    assert "Access ends **2026-12-01 15:00:00 UTC** (in 2 days 5 hours)" in words
    assert f"**{reason}**: {explain.risk(reason).meaning}" in words
    assert f"**{reason}**, for {WHO[reason]}: {ADVICE[reason]}" in words
    assert "Owner: adele.vance@contoso.example" in words
    assert "Detected by: devicemon's Intune watch (the Intune record changed)" in words
    assert "Warned: 72 hours ahead of a known deadline" in words
    assert card["fallbackText"].startswith(f"LAPTOP-0042 at risk ({reason})")


@pytest.mark.parametrize("reason", ALL_RISKS)
def test_the_headline_gives_the_deadline_from_now_or_any_moment_for_a_mismatch(
    reason: str,
) -> None:
    _, _, title = banner(at_risk_card(view(reason), NOW))
    mismatch = reason == "INTUNE_ENTRA_MISMATCH"
    ends = "at any moment" if mismatch else "in 2 days 5 hours"
    assert title == f"LAPTOP-0042 will lose device-based Conditional Access {ends}"


def test_a_mismatch_without_a_deadline_ends_at_any_moment() -> None:
    card = at_risk_card(view("INTUNE_ENTRA_MISMATCH", deadline=None), NOW)
    check(card)
    assert banner(card)[2].endswith("at any moment")
    assert "Access ends **at any moment**: Intune's verdict has not reached Entra ID" in texts(card)
    assert "UTC (in" not in texts(card)


def test_no_deadline_and_no_mismatch_says_the_time_is_unknown() -> None:
    card = at_risk_card(view("COMPLIANCE_ERROR_PENDING", deadline=None), NOW)
    check(card)
    assert banner(card)[2].endswith("at a time devicemon does not know")


def test_a_card_decided_after_the_deadline_says_it_passed() -> None:
    card = at_risk_card(view("CHECKIN_OVERDUE"), DEADLINE + timedelta(minutes=3))
    assert banner(card)[2].endswith("now (its deadline has passed)")
    assert "(passed 3 minutes ago)" in texts(card)


def test_several_risks_each_get_their_why_and_their_advice() -> None:
    card = at_risk_card(view(*ALL_RISKS), NOW)
    check(card)
    words = texts(card)
    for reason in ALL_RISKS:
        assert f"**{reason}**: {explain.risk(reason).meaning}" in words
        assert ADVICE[reason] in words
    assert banner(card)[2].endswith("at any moment")  # the mismatch can end it before


def test_without_advice_in_the_alert_the_risks_own_action_is_given() -> None:
    alert = risk_alert(("CHECKIN_OVERDUE",))
    alert["data"]["risk"]["advice"] = []
    words = texts(at_risk_card(parse_alert(alert), NOW))
    assert f"for the user: {explain.risk('CHECKIN_OVERDUE').action}" in words


@pytest.mark.parametrize("reason", ALL_RISKS)
def test_the_cleared_card_is_short_and_green(reason: str) -> None:
    card = cleared_card(view(reason, cleared=True))
    check(card)
    style, label, title = banner(card)
    assert (style, label) == ("good", "🟢 NO LONGER AT RISK")
    assert title == "LAPTOP-0042 keeps device-based Conditional Access"
    assert f"✔ **{reason}** (resolved): {explain.risk(reason).short}" in texts(card)
    assert len(card["body"]) == 3 and card["actions"][0]["title"] == "Open in Entra admin center"


def test_risk_cards_stay_valid_with_huge_values_and_unknown_codes() -> None:
    alert = risk_alert(("GRACE_PERIOD_ENDING",), name=HUGE, upn=HUGE)
    alert["data"]["risk"]["reasons"].append("SOME_FUTURE_RISK")
    alert["data"]["risk"]["advice"][0]["action"] = HUGE
    for card in (at_risk_card(parse_alert(alert), NOW), cleared_card(parse_alert(alert))):
        check(card)
    assert "A risk code this version does not know." in texts(at_risk_card(parse_alert(alert), NOW))


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(days=2, hours=5, minutes=7), "in 2 days 5 hours"),
        (timedelta(days=1), "in 1 day"),
        (timedelta(hours=5, minutes=20), "in 5 hours 20 minutes"),
        (timedelta(hours=1, minutes=1), "in 1 hour 1 minute"),
        (timedelta(minutes=12, seconds=30), "in 12 minutes"),
        (timedelta(seconds=20), "in less than a minute"),
        (timedelta(0), "passed less than a minute ago"),
        (-timedelta(hours=3), "passed 3 hours ago"),
    ],
)
def test_relative_times(delta: timedelta, words: str) -> None:
    assert relative(NOW + delta, NOW) == words


# --- blocking policies (issue 14 item 4) -------------------------------------------------------

POLICIES = [
    policy("Require compliant device for all users"),
    policy("Block unmanaged Windows for Finance", "users", "applications"),
    policy("Kiosk block", "locations", reasons=("BLOCKED_BY_POLICY",)),
]


def test_a_lost_card_names_the_blocking_policies_and_what_they_are_conditional_on() -> None:
    alert = with_policies(
        make_alert(reasons=("NOT_COMPLIANT", "BLOCKED_BY_POLICY")),
        POLICIES,
        report_only=[policy("Require hybrid (pilot)", reasons=("NOT_HYBRID_JOINED",))],
    )
    card = alert_card(parse_alert(alert))
    check(card)
    words = texts(card)
    assert "Blocked by" in words
    assert "**Require compliant device for all users**: not compliant" in words
    assert (
        "**Block unmanaged Windows for Finance** (for the users and applications it selects): not compliant"
        in words
    )
    assert "**Kiosk block** (for the locations it selects): blocked by a policy" in words
    assert "Report-only policies it would also fail: Require hybrid (pilot)" in words
    assert "CA requires: what the tenant's Conditional Access policies require" in words


def test_under_the_ca_policy_setting_no_policies_are_named() -> None:
    alert = with_policies(make_alert(), POLICIES[:1], judged_by="ca_policy_setting")
    words = texts(alert_card(parse_alert(alert)))
    assert "Blocked by" not in words and "Require compliant device" not in words
    assert "CA requires: a compliant device or a hybrid joined device" in words


def test_an_at_risk_card_names_the_policies_that_will_block_it() -> None:
    card = at_risk_card(view("GRACE_PERIOD_ENDING", blocking=POLICIES[:2]), NOW)
    check(card)
    words = texts(card)
    assert "Policies that will block it" in words
    assert (
        "**Block unmanaged Windows for Finance** (for the users and applications it selects)"
        in words
    )


def test_many_blocking_policies_are_cut_and_counted() -> None:
    many = [policy(f"Policy {i:02d} " + "x" * 300, "users") for i in range(40)]
    card = alert_card(parse_alert(with_policies(make_alert(), many)))
    check(card)
    assert "…and 35 more" in texts(card)


def test_a_restored_card_warns_when_the_device_is_restored_straight_into_a_risk() -> None:
    alert = make_alert(lost=False)
    alert["data"]["current"].update(
        riskReasons=["GRACE_PERIOD_ENDING"], deadline="2026-12-01T15:00:00Z"
    )
    card = alert_card(parse_alert(with_policies(alert, [], judged_by="ca_policy_setting")))
    check(card)
    words = texts(card)
    assert "Still at risk" in words
    assert "it will lose access again on 2026-12-01 15:00:00 UTC unless this is fixed" in words
    assert f"**GRACE_PERIOD_ENDING**: {explain.risk('GRACE_PERIOD_ENDING').meaning}" in words
    assert "Still at risk" not in texts(alert_card(parse_alert(make_alert(lost=False))))


# --- mass events of early warnings -------------------------------------------------------------


def summary(at_risk: int, cleared: int = 0, lost: int = 0, code: str = "") -> MassSummary:
    first = datetime(2026, 11, 29, 10, 0, tzinfo=T0.tzinfo)
    return MassSummary(
        phase="start",
        first=first,
        last=first + timedelta(minutes=4),
        lost=lost,
        restored=0,
        at_risk=at_risk,
        cleared=cleared,
        reasons={code: at_risk + cleared + lost} if code else {},
        devices=("PC-001", "PC-002"),
        next_summary_at=12_000,
    )


@pytest.mark.parametrize("reason", ALL_RISKS)
def test_a_burst_of_devices_put_at_risk_is_one_summary_naming_the_likely_cause(
    reason: str,
) -> None:
    card = mass_card(summary(3000, code=reason), 10)
    check(card)
    words = texts(card)
    assert banner(card)[2] == "3000 devices were put at risk within 10 minutes"
    assert "At risk (still eligible): 3000" in words
    assert "No longer at risk: 0" in words
    assert f"3000 of 3000 share **{reason}**: one common cause is likely." in words
    assert MASS_RISK_CAUSES[reason] in words
    assert card["fallbackText"] == "Mass event: 3000 devices were put at risk"


def test_a_summary_of_risks_going_away_says_the_cause_was_undone() -> None:
    card = mass_card(summary(0, cleared=40, code="CHECKIN_OVERDUE"), 10)
    check(card)
    assert banner(card)[2] == "40 devices changed their risk within 10 minutes"
    assert MASS_CLEARED in texts(card)


def test_a_mixed_burst_counts_each_kind_and_keeps_eligibility_summaries_as_they_were() -> None:
    mixed = mass_card(summary(10, lost=30, code="NOT_COMPLIANT"), 10)
    assert banner(mixed)[2] == "40 devices changed eligibility or risk within 10 minutes"
    assert "Lost eligibility: 30" in texts(mixed)
    plain = mass_card(summary(0, lost=30, code="NOT_COMPLIANT"), 10)
    assert banner(plain)[2] == "30 devices changed eligibility within 10 minutes"
    assert "At risk" not in texts(plain)


def test_every_risk_has_a_mass_event_cause_and_someone_to_act() -> None:
    assert set(MASS_RISK_CAUSES) == set(ALL_RISKS) == set(WHO)
    assert set(explain.RISKS) == set(ALL_RISKS)


def test_a_mass_event_names_the_blocking_policy_most_devices_share() -> None:
    name = "CA007_REQUIRE_COMPLIANT_WINDOWS"  # named like a code: it must not sit in a FactSet
    event = replace(
        summary(0, lost=3000, code="NOT_COMPLIANT"),
        policies={name: 2950, "Block legacy kiosks": 50},
    )
    card = mass_card(event, 10)
    check(card)
    words = texts(card)
    assert "Blocking policies (devices)" in words
    assert f"2950: **{name}**" in words and "50: **Block legacy kiosks**" in words
    assert f"2950 of 3000 are blocked by **{name}**: a change to that policy" in words


def test_no_policy_section_when_no_policy_judged_and_no_cause_when_none_dominates() -> None:
    assert "Blocking policies" not in texts(mass_card(summary(0, lost=30), 10))
    spread = replace(summary(0, lost=30), policies={"A": 15, "B": 15})
    words = texts(mass_card(spread, 10))
    assert "15: **A**" in words and "are blocked by" not in words


def test_an_at_risk_card_shows_what_intune_says_fails_when_the_alert_carries_it() -> None:
    alert = risk_alert(("GRACE_PERIOD_ENDING",))
    alert["data"]["compliance"] = {
        "failingPolicies": [
            {"id": "p1", "displayName": "Windows baseline", "state": "nonCompliant"}
        ],
        "failingSettings": [
            {
                "setting": "Windows10CompliancePolicy.BitLockerEnabled",
                "state": "nonCompliant",
                "policyId": "p1",
                "policyName": "Windows baseline",
                "sentence": "BitLocker drive encryption is off.",
                "fix": "Turn on BitLocker for the OS drive.",
            }
        ],
    }
    card = at_risk_card(parse_alert(alert), NOW)
    check(card)
    assert "**BitLocker drive encryption is off.**" in texts(card)
    assert "Failing compliance settings" not in texts(at_risk_card(view("CHECKIN_OVERDUE"), NOW))


@pytest.mark.parametrize(
    ("where", "value"),
    [("risk", ["not", "an", "object"]), ("blockingPolicies", ["not an object"])],
)
def test_a_malformed_early_warning_is_poison_not_a_guess(where: str, value: Any) -> None:
    alert = risk_alert(("GRACE_PERIOD_ENDING",))
    if where == "risk":
        alert["data"]["risk"] = value
    else:
        alert["data"]["current"]["blockingPolicies"] = value
    with pytest.raises(AlertFormatError, match=where):
        parse_alert(alert)
