"""Noise control state machines (pure): flapping per device, mass events across the fleet."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from shared.consumers.noise import (
    ESCALATION,
    MAX_CLAIMS,
    FlapAction,
    FlapDecision,
    FlapState,
    Flip,
    MassAction,
    MassDecision,
    NoiseSettings,
    StormState,
    flap_step,
    flips,
    mass_step,
    needs_window,
)
from tests.alert_helpers import T0

S = NoiseSettings(
    flap_window=timedelta(minutes=60),
    flap_threshold=4,
    mass_window=timedelta(minutes=10),
    mass_threshold=5,
)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def run_flaps(
    times: list[float], state: FlapState | None = None
) -> tuple[FlapState, list[FlapDecision]]:
    state = state or FlapState()
    decisions = []
    for i, t in enumerate(times):
        state, decision = flap_step(state, f"a{i}-{t}", minutes(t), i % 2 == 0, S)
        decisions.append(decision)
    return state, decisions


def actions(decisions: list[FlapDecision]) -> list[str]:
    return [d.action.value for d in decisions]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0], ["post"]),
        ([0, 1, 2], ["post"] * 3),
        ([0, 1, 2, 3], ["post", "post", "post", "flapping"]),
        ([0, 1, 2, 3, 4, 5, 30, 59], ["post"] * 3 + ["flapping"] + ["skip"] * 4),
        # spread out: never four within an hour
        ([0, 25, 50, 75, 100, 125], ["post"] * 6),
        # exactly one window apart does not count as inside it
        ([0, 20, 40, 60], ["post"] * 4),
        ([0, 20, 40, 59.9], ["post"] * 3 + ["flapping"]),
    ],
)
def test_flapping_starts_at_the_threshold_within_the_window(
    times: list[float], expected: list[str]
) -> None:
    assert actions(run_flaps(times)[1]) == expected


def test_a_flapping_card_opens_a_quiet_window_then_one_card_reports_the_skips() -> None:
    state, decisions = run_flaps([0, 1, 2, 3, 10, 20])
    assert decisions[3] == FlapDecision(FlapAction.FLAPPING, 0, minutes(63))
    assert state.quiet_until == minutes(63) and state.skipped == 2
    # the device calmed down: after the quiet window, fewer than 4 changes in the last hour
    state, after = flap_step(state, "late", minutes(125), True, S)
    assert after == FlapDecision(FlapAction.POST, skipped=2)
    assert state.quiet_until is None and state.skipped == 0
    assert set(state.recent) == {"late"}  # older changes fell out of the window


def test_a_device_that_keeps_flapping_gets_one_card_per_window() -> None:
    times = [float(t) for t in range(0, 150, 5)]  # a flip every 5 minutes for 2.5 hours
    got = actions(run_flaps(times)[1])
    assert got.count("post") == 3  # the three before the threshold
    # one flapping card as each quiet hour ends: at 15, 75 and 135 minutes
    assert [times[i] for i, a in enumerate(got) if a == "flapping"] == [15, 75, 135]


def test_the_card_after_a_second_window_counts_only_that_windows_skips() -> None:
    times = [float(t) for t in range(0, 80, 5)]  # flapping card at 15, again at 75
    state, decisions = run_flaps(times)
    assert decisions[-1].action is FlapAction.FLAPPING and decisions[-1].skipped == 11
    assert state.skipped == 0


def test_the_same_alert_again_gets_the_same_decision_and_changes_nothing() -> None:
    state, decisions = run_flaps([0, 1, 2, 3])
    again, decision = flap_step(state, "a3-3", minutes(3), False, S)
    assert decision == decisions[3]
    assert again == state


def test_late_alerts_are_judged_by_when_the_device_changed() -> None:
    state, _ = run_flaps([10, 11, 12, 13])  # flapping from 13, quiet until 73
    state, early = flap_step(state, "late-arrival", minutes(9), True, S)
    assert early.action is FlapAction.SKIP  # detected before the quiet window ends
    assert len(state.recent) == 5


def test_flips_lists_the_window_in_time_order() -> None:
    state, _ = run_flaps([30, 0, 10, 20])
    assert [f.at for f in flips(state, minutes(30), S)] == [minutes(t) for t in (0, 10, 20, 30)]
    assert flips(state, minutes(75), S) == [Flip(minutes(20), False), Flip(minutes(30), True)]


def test_each_flip_keeps_the_reasons_it_was_about() -> None:
    state, _ = flap_step(FlapState(), "a", minutes(0), True, S, ("NOT_COMPLIANT",))
    state, _ = flap_step(state, "b", minutes(1), False, S, ("NOT_COMPLIANT",))
    state, _ = flap_step(state, "c", minutes(2), True, S, ("DEVICE_DISABLED", "NOT_COMPLIANT"))
    assert flips(state, minutes(2), S) == [
        Flip(minutes(0), True, ("NOT_COMPLIANT",)),
        Flip(minutes(1), False, ("NOT_COMPLIANT",)),
        Flip(minutes(2), True, ("DEVICE_DISABLED", "NOT_COMPLIANT")),
    ]


# --- mass events ---------------------------------------------------------------------------------


def mass(
    state: StormState, alert_id: str, t: float, count: int = 1, new: bool = True
) -> tuple[StormState, MassDecision]:
    return mass_step(
        state,
        alert_id,
        minutes(t),
        new=new,
        window_count=count,
        window_first=minutes(0),
        settings=S,
    )


@pytest.mark.parametrize("count", [1, 2, 4])
def test_below_the_threshold_nothing_changes(count: int) -> None:
    state, decision = mass(StormState(), "a", 1, count)
    assert decision.action is MassAction.NORMAL
    assert state == StormState()


@pytest.mark.parametrize("count", [5, 6, 500])
def test_the_threshold_starts_a_storm_with_a_summary(count: int) -> None:
    state, decision = mass(StormState(), "a", 3, count)
    assert decision == MassDecision(MassAction.START, minutes(0), minutes(3), count * ESCALATION)
    assert state.active and state.count == count and state.next_summary == count * ESCALATION
    assert state.first == minutes(0) and state.last == minutes(3)


def test_inside_a_storm_alerts_are_counted_and_summarised_at_fourfold_growth() -> None:
    state, _ = mass(StormState(), "start", 1, 5)
    decisions = []
    for i in range(16):
        state, decision = mass(state, f"s{i}", 2 + i * 0.1)
        decisions.append(decision.action)
    assert decisions[:14] == [MassAction.SUPPRESS] * 14
    assert decisions[14] == MassAction.UPDATE  # the 20th alert: 5 x 4
    assert decisions[15] == MassAction.SUPPRESS
    assert state.count == 21 and state.next_summary == 80


def test_a_redelivered_alert_is_not_counted_twice() -> None:
    state, _ = mass(StormState(), "start", 1, 5)
    state, _ = mass(state, "x", 2)
    again, decision = mass(state, "x", 2.5, new=False)
    assert decision.action is MassAction.SUPPRESS
    assert again.count == state.count


def test_the_alert_that_claimed_a_summary_gets_it_again() -> None:
    state, first = mass(StormState(), "start", 1, 5)
    for i in range(3):
        state, _ = mass(state, f"s{i}", 2)
    again, decision = mass(state, "start", 2, new=False)
    assert decision == first and again == state


def test_a_quiet_window_ends_the_storm_with_a_final_summary() -> None:
    state, _ = mass(StormState(), "start", 1, 5)
    state, _ = mass(state, "s1", 4)
    assert not needs_window(state, minutes(14), S)
    assert needs_window(state, minutes(14.01), S)
    state, decision = mass(state, "after", 14.01)
    assert decision == MassDecision(MassAction.END, minutes(0), minutes(4))
    assert not state.active
    state, next_one = mass(state, "later", 15)
    assert next_one.action is MassAction.NORMAL


def test_after_a_storm_a_new_one_can_start() -> None:
    state, _ = mass(StormState(), "start", 1, 5)
    state, _ = mass(state, "end", 30)
    state, decision = mass(state, "again", 31, 7)
    assert decision.action is MassAction.START and state.count == 7


def test_claims_stay_bounded() -> None:
    state = StormState(active=True, first=minutes(0), last=minutes(0), count=1, next_summary=1)
    for i in range(MAX_CLAIMS + 10):
        state, decision = mass(replace(state, next_summary=0), f"u{i}", 0)
        assert decision.action is MassAction.UPDATE
    assert len(state.claims) == MAX_CLAIMS


def test_the_flap_row_keeps_each_flips_reasons() -> None:
    from shared.consumers.noise_rows import flap_columns, flap_state

    state, _ = run_flaps([0, 1, 2, 3])
    state, _ = flap_step(state, "e", minutes(4), True, S, ("DEVICE_DISABLED", "NOT_COMPLIANT"))
    row = flap_columns(state)
    assert flap_state(row) == state
    # a row written before reasons were kept reads as flips without reasons
    older = json.loads(row["Recent"])
    for raw in older.values():
        del raw["reasons"]
    assert {
        s.reasons for s in flap_state({**row, "Recent": json.dumps(older)}).recent.values()
    } == {()}
