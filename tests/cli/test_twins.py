"""What `devicemon device NAME` shows of devices that share a name (pure: rows built in memory)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cli.device import twins_rows
from shared.core.observations import Facts
from shared.core.records import StateRow
from tests.shared.views.fleet_data import record, state

SEEN = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def described(object_id: str, **graph: object) -> StateRow:
    """A state row whose snapshot holds the device as Graph sent it (device.md's names)."""
    facts = Facts(SEEN, {"id": object_id, "displayName": "SHARED-PC", **graph})
    return state(record(object_id, display_name="SHARED-PC")).with_snapshot(facts.to_json())


def ids(rows: list[list[object]]) -> list[object]:
    return [row[0] for row in rows]


def test_most_recent_sign_in_first_and_never_signed_in_last() -> None:
    never = described(
        "00000000-0000-4000-8000-00000000000a", registrationDateTime="2026-01-02T00:00:00Z"
    )
    old = described(
        "00000000-0000-4000-8000-00000000000b",
        approximateLastSignInDateTime="2025-04-20T07:30:00Z",
        registrationDateTime="2024-02-05T09:12:00Z",
    )
    new = described(
        "00000000-0000-4000-8000-00000000000c",
        approximateLastSignInDateTime="2026-11-24T08:00:00+01:00",
        registrationDateTime="2026-10-01T14:03:00Z",
    )

    rows = twins_rows([never, old, new])

    assert ids(rows) == [new.record.object_id, old.record.object_id, never.record.object_id]
    assert [row[4:6] for row in rows] == [
        ["2026-11-24", "2026-10-01"],  # shown in UTC
        ["2025-04-20", "2024-02-05"],
        ["-", "2026-01-02"],
    ]


@pytest.mark.parametrize(
    "snapshot",
    ["", "not json", '{"observedAt": "2026-11-30T08:00:00Z"}'],
    ids=["written-before-snapshots", "unreadable", "no-device"],
)
def test_a_row_without_a_readable_snapshot_shows_dashes(snapshot: str) -> None:
    row = StateRow(record(), "first_seen", SEEN, snapshot=snapshot)

    [shown] = twins_rows([row])

    assert shown[2:] == ["Entra joined", "Windows 11 23H2", "-", "-", "eligible"]
