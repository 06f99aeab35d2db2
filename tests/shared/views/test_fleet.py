"""Fleet aggregation, filters, eligibility over time and paging tokens: pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.views.fleet import (
    DayPoint,
    DeviceFilter,
    FilterError,
    daily_series,
    decode_token,
    encode_token,
    ineligible,
    is_guid,
    record_changes,
    summarize,
    window_start,
)
from tests.shared.views.fleet_data import history, record
from tests.shared.views.fleet_data import ineligible as bad

ID1, ID2, ID3 = (f"00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("3f2c0b8e-1d7a-4c1e-9a51-0a7e6b2f9c11", True),
        ("3F2C0B8E-1D7A-4C1E-9A51-0A7E6B2F9C11", True),
        ("LAPTOP-0042", False),
        ("3f2c0b8e1d7a4c1e9a510a7e6b2f9c11", False),
        ("", False),
    ],
)
def test_is_guid(value: str, ok: bool) -> None:
    assert is_guid(value) is ok


def test_summary_counts_devices_by_join_type_os_reason_and_warning() -> None:
    records = [
        record(ID1),
        bad(object_id=ID2, display_name="b"),
        record(
            ID3,
            join_type="hybrid_joined",
            operating_system_version="6.3.9600",
            warnings=("UNSUPPORTED_OS",),
        ),
        record(
            "00000000-0000-4000-8000-000000000004",
            eligible=False,
            reasons=("DEVICE_DELETED",),
            deleted=True,
        ),
    ]

    summary = summarize(records)

    assert (summary.overall.devices, summary.overall.eligible, summary.overall.ineligible) == (
        4,
        2,
        2,
    )
    assert summary.overall.eligible_percent == 50.0
    assert summary.deleted == 1
    assert list(summary.by_join_type) == ["entra_joined", "hybrid_joined"]  # largest first
    assert summary.by_join_type["entra_joined"].ineligible == 2
    assert summary.by_os["Windows 8.1"].devices == 1
    assert dict(summary.by_reason) == {
        "NOT_COMPLIANT": 1,
        "NOT_HYBRID_JOINED": 1,
        "DEVICE_DELETED": 1,
    }
    assert dict(summary.by_warning) == {"UNSUPPORTED_OS": 1}
    assert dict(summary.policies) == {"compliant_or_hybrid": 4}


def test_empty_fleet() -> None:
    summary = summarize([])
    assert (summary.overall.devices, summary.overall.eligible_percent) == (0, 0.0)


def test_ineligible_sorted_by_name_case_insensitively() -> None:
    records = [
        bad(object_id=ID1, display_name="b"),
        bad(object_id=ID2, display_name="A"),
        record(ID3),
    ]
    assert [r.display_name for r in ineligible(records)] == ["A", "b"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eligible": "yes"}, "eligible must be true or false"),
        ({"join_type": "joined"}, "joinType must be one of entra_joined"),
        ({"reason": "BROKEN"}, "reason must be one of DEVICE_DELETED"),
    ],
)
def test_filter_rejects_values_that_cannot_be_right(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        DeviceFilter.parse(**kwargs)


def test_filter_normalises_and_splits_work_between_table_and_rows() -> None:
    wanted = DeviceFilter.parse(eligible="FALSE", join_type="Hybrid_Joined", reason="not_compliant")

    assert wanted == DeviceFilter(False, "hybrid_joined", "NOT_COMPLIANT", None)
    assert wanted.table_query() == (
        "Eligible eq @eligible and JoinType eq @joinType",
        {"eligible": False, "joinType": "hybrid_joined"},
    )
    assert wanted.checks_rows
    assert DeviceFilter.parse().table_query() == (None, {})
    assert not DeviceFilter.parse(eligible="true").checks_rows


@pytest.mark.parametrize(
    ("wanted", "matches"),
    [
        (DeviceFilter(), True),
        (DeviceFilter(eligible=False), True),
        (DeviceFilter(eligible=True), False),
        (DeviceFilter(join_type="entra_joined"), True),
        (DeviceFilter(join_type="registered"), False),
        (DeviceFilter(reason="NOT_COMPLIANT"), True),
        (DeviceFilter(reason="NOT_JOINED"), False),
        (DeviceFilter(os="windows"), True),
        (DeviceFilter(os="Windows 11"), True),
        (DeviceFilter(os="windows 10.0.226"), True),
        (DeviceFilter(os="Windows 10"), False),
        (DeviceFilter(os="Android"), False),
    ],
)
def test_filter_matches(wanted: DeviceFilter, matches: bool) -> None:
    assert wanted.matches(bad()) is matches


TODAY = date(2026, 11, 29)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def test_window_starts_at_midnight_utc_of_the_first_day() -> None:
    assert window_start(3, TODAY) == datetime(2026, 11, 27, tzinfo=UTC)


def test_series_from_current_state_and_the_window_rows() -> None:
    # ID1: steady and eligible, no row in the window. ID2: lost on the 28th, restored on the 29th.
    # ID3: first seen on the 28th, ineligible. A row from before the window is ignored.
    current = [
        record(ID1, evaluated_at=at(1)),
        record(ID2, evaluated_at=at(29), version=3),
        bad(object_id=ID3, evaluated_at=at(28)),
    ]
    window = [
        history(record(ID2, evaluated_at=at(29), version=3), "restored"),
        history(bad(object_id=ID2, evaluated_at=at(28), version=2), "lost"),
        history(bad(object_id=ID3, evaluated_at=at(28)), "first_seen"),
        history(record(ID2, evaluated_at=at(20), version=1), "first_seen"),
    ]

    series = daily_series(current, window, 3, TODAY)

    assert series == [
        DayPoint(date(2026, 11, 27), 2, 0),
        DayPoint(date(2026, 11, 28), 1, 2),
        DayPoint(date(2026, 11, 29), 2, 1),
    ]
    assert [p.devices for p in series] == [2, 3, 3]


@pytest.mark.parametrize(
    ("transition", "eligible_now", "before"),
    [
        ("lost", False, DayPoint(date(2026, 11, 28), 1, 0)),
        ("restored", True, DayPoint(date(2026, 11, 28), 0, 1)),
        ("changed", False, DayPoint(date(2026, 11, 28), 0, 1)),
        ("changed", True, DayPoint(date(2026, 11, 28), 1, 0)),
        ("first_seen", True, DayPoint(date(2026, 11, 28), 0, 0, known=False)),
    ],
)
def test_state_before_the_first_row_in_the_window_follows_from_its_transition(
    transition: str, eligible_now: bool, before: DayPoint
) -> None:
    row = record(ID1, evaluated_at=at(29, 8), eligible=eligible_now, version=4)
    series = daily_series([row], [history(row, transition)], 2, TODAY)
    assert series[0] == before
    assert series[1] == DayPoint(TODAY, int(eligible_now), int(not eligible_now))


def test_days_before_monitoring_began_are_not_known_rather_than_zero() -> None:
    # devicemon's first sync ran on the 28th at 08:00: the 27th has no data, not zero devices
    first = record(ID1, evaluated_at=at(28, 8))
    second = bad(object_id=ID2, evaluated_at=at(29, 9))
    window = [history(first, "first_seen"), history(second, "first_seen")]

    series = daily_series([first, second], window, 3, TODAY)

    assert series == [
        DayPoint(date(2026, 11, 27), 0, 0, known=False),
        DayPoint(date(2026, 11, 28), 1, 0),
        DayPoint(date(2026, 11, 29), 1, 1),
    ]


@pytest.mark.parametrize(
    ("first_row", "known"),
    [
        ("first_seen", [False, True]),  # first evaluated at midnight: that day is its first
        ("changed", [True, True]),  # the device was known before the window
        ("lost", [True, True]),
    ],
)
def test_an_evaluation_at_midnight_opens_that_day(first_row: str, known: list[bool]) -> None:
    row = record(ID1, evaluated_at=datetime(2026, 11, 29, tzinfo=UTC))
    series = daily_series([row], [history(row, first_row)], 2, TODAY)
    assert [p.known for p in series] == known


def test_a_device_with_no_row_in_the_window_makes_every_day_known() -> None:
    steady = record(ID1, evaluated_at=at(1))
    late = record(ID2, evaluated_at=at(29, 9))
    series = daily_series([steady, late], [history(late, "first_seen")], 3, TODAY)
    assert [(p.known, p.devices) for p in series] == [(True, 1), (True, 1), (True, 2)]


def test_nothing_evaluated_yet_is_no_data_on_every_day() -> None:
    assert [p.known for p in daily_series([], [], 3, TODAY)] == [False, False, False]


def test_record_changes_lists_moved_facts_then_codes() -> None:
    older = record(ID1)
    newer = bad(object_id=ID1, display_name="LAPTOP-0042-NEW", warnings=("STALE_SIGN_IN",))

    assert record_changes(older, newer) == [
        "name: LAPTOP-0042 → LAPTOP-0042-NEW",
        "compliance: compliant → noncompliant",
        "+reason NOT_COMPLIANT, NOT_HYBRID_JOINED",
        "+warning STALE_SIGN_IN",
    ]
    assert record_changes(newer, older)[-2:] == [
        "-reason NOT_COMPLIANT, NOT_HYBRID_JOINED",
        "-warning STALE_SIGN_IN",
    ]
    assert record_changes(None, newer) == []
    assert record_changes(older, record(ID1, account_enabled=None)) == [
        "accountEnabled: true → (none)"
    ]


@pytest.mark.parametrize(
    "resume",
    [{"after": ID1}, {"next": {"PartitionKey": "1!48!abc", "RowKey": "1!12!Y3VycmVudA--"}}],
)
def test_tokens_round_trip_and_are_url_safe(resume: dict) -> None:
    token = encode_token(resume)
    assert decode_token(token) == resume
    assert all(c.isalnum() or c in "-_" for c in token)


@pytest.mark.parametrize(
    "token", ["", "!!!", "bm90IGpzb24", encode_token({"after": 5}), encode_token({"next": 3})]
)
def test_foreign_tokens_are_refused(token: str) -> None:
    with pytest.raises(FilterError, match="continuationToken"):
        decode_token(token)


def test_series_is_one_point_per_day_even_without_rows() -> None:
    series = daily_series([], [], 30, TODAY)
    assert len(series) == 30 and series[-1].day == TODAY and series[0].day == TODAY - timedelta(29)
