"""Observations: merging delta items, which facts win, which device may have an Intune record.
Pure; payloads follow Graph's documented shapes (resources/device.md, delta-query-overview.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.core.changes import DeviceChange
from shared.core.evaluation import INTUNE_MDM_APP_ID
from shared.core.models import Source
from shared.core.observations import (
    MAX_OBSERVATION_CHARS,
    REREAD,
    STALE,
    Facts,
    ObservationError,
    complete,
    intune_written_changed,
    may_have_intune_record,
    merge_items,
    newest_record,
    plan,
    same_facts,
    snapshots,
    with_held_intune,
)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
REQUIRED = ("id", "deviceId", "displayName", "accountEnabled", "isCompliant", "isManaged")
OBJECT_ID = "000005c3-b7a6-4c61-89fc-80bf5ccfc366"
# resources/device.md / device-get's example, with the properties devicemon selects.
FULL = {
    "id": OBJECT_ID,
    "deviceId": "6fa60d52-01e7-4b18-8055-4759461fc16b",
    "displayName": "DESKTOP-858MANH",
    "accountEnabled": True,
    "isCompliant": True,
    "isManaged": True,
}
RECORD = {
    "id": "a1b2c3",
    "azureADDeviceId": FULL["deviceId"],
    "complianceState": "compliant",
    "lastSyncDateTime": "2026-11-30T08:00:00Z",
}


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stored(**overrides: Any) -> Facts:
    values: dict[str, Any] = {
        "observed_at": at(0),
        "device": FULL,
        "managed": (RECORD,),
        "managed_at": at(0),
    }
    values.update(overrides)
    return Facts(**values)


# --- plan: what the processor evaluates from ------------------------------------------------


def test_a_bare_hint_is_reread() -> None:
    assert plan(None, stored(), stored_deleted=False, required=REQUIRED) == REREAD


@pytest.mark.parametrize("minutes", [-1, -60])
def test_an_observation_older_than_the_stored_one_changes_nothing(minutes: int) -> None:
    change = Facts(at(minutes), {**FULL, "isCompliant": False})
    assert plan(change, stored(), stored_deleted=False, required=REQUIRED) == STALE


@pytest.mark.parametrize("held_managed_at", [-10, None])
def test_intune_records_read_after_the_stored_ones_apply_even_when_the_device_part_is_older(
    held_managed_at: int | None,
) -> None:
    # The Intune watch listed managed devices at minute 2; a delta item observed at minute 3 was
    # processed first. The watch's grace period must still be seen.
    grace = {**RECORD, "complianceState": "inGracePeriod"}
    held = stored(
        observed_at=at(3),
        managed=(RECORD,) if held_managed_at is not None else None,
        managed_at=at(held_managed_at) if held_managed_at is not None else None,
    )
    watch = Facts(at(2), {"id": OBJECT_ID, "deviceId": FULL["deviceId"]}, (grace,), at(2))

    decided = plan(watch, held, stored_deleted=False, required=REQUIRED)

    assert decided.facts is not None
    assert decided.facts.device == FULL and decided.facts.observed_at == at(3)
    assert (decided.facts.managed, decided.facts.managed_at) == ((grace,), at(2))


@pytest.mark.parametrize(
    ("held_managed_at", "deleted"),
    [(3, False), (2, False), (-10, True)],
)
def test_older_intune_records_or_a_deleted_device_stay_stale(
    held_managed_at: int, deleted: bool
) -> None:
    held = stored(observed_at=at(3), managed_at=at(held_managed_at))
    watch = Facts(at(2), {"id": OBJECT_ID}, ({**RECORD, "complianceState": "error"},), at(2))
    assert plan(watch, held, stored_deleted=deleted, required=REQUIRED) == STALE


def test_an_observation_of_the_same_instant_is_applied_in_queue_order() -> None:
    # Two pages of one round can be read within the clock's resolution: order decides.
    change = Facts(at(0), {"id": OBJECT_ID, "isCompliant": False})
    decided = plan(change, stored(), stored_deleted=False, required=REQUIRED)
    assert decided.facts is not None and decided.facts.device["isCompliant"] is False


def test_a_partial_update_is_merged_onto_the_stored_snapshot() -> None:
    # delta-query-overview.md: an updated instance carries at least the updated properties.
    change = Facts(at(5), {"id": OBJECT_ID, "isCompliant": False, "@odata.type": "#x"})

    decided = plan(change, stored(), stored_deleted=False, required=REQUIRED)

    assert decided.facts is not None
    assert decided.facts.device == {**FULL, "isCompliant": False}
    assert decided.facts.observed_at == at(5)


@pytest.mark.parametrize(
    ("held", "deleted"),
    [
        (None, False),  # nothing stored to merge onto
        (
            stored(device={k: v for k, v in FULL.items() if k != "isManaged"}),
            False,
        ),  # older $select
        (stored(), True),  # stored as deleted: a restored object is read whole
        (stored(device={"id": OBJECT_ID, "@removed": {"reason": "changed"}}), False),
    ],
)
def test_a_partial_update_without_a_full_snapshot_to_merge_onto_is_reread(
    held: Facts | None, deleted: bool
) -> None:
    change = Facts(at(5), {"id": OBJECT_ID, "displayName": "RENAMED"})
    assert plan(change, held, stored_deleted=deleted, required=REQUIRED) == REREAD


def test_a_complete_item_needs_no_stored_snapshot() -> None:
    decided = plan(Facts(at(5), FULL), None, stored_deleted=False, required=REQUIRED)
    assert decided.facts == Facts(at(5), FULL)


@pytest.mark.parametrize("reason", ["changed", "deleted"])
def test_a_removal_is_evaluated_as_it_came_without_intune(reason: str) -> None:
    removal = {"id": OBJECT_ID, "@removed": {"reason": reason}}
    decided = plan(Facts(at(5), removal), stored(), stored_deleted=False, required=REQUIRED)
    assert decided.facts is not None
    assert decided.facts.removed and decided.facts.managed == ()
    assert decided.facts.device["@removed"] == {"reason": reason}


def test_held_intune_records_are_kept_while_nothing_intune_writes_moved() -> None:
    change = Facts(at(5), {"id": OBJECT_ID, "displayName": "RENAMED"})
    decided = plan(change, stored(), stored_deleted=False, required=REQUIRED)
    assert decided.facts is not None and decided.facts.managed == (RECORD,)


@pytest.mark.parametrize(
    "moved",
    [
        {"isCompliant": False},
        {"isManaged": False},
        {"mdmAppId": INTUNE_MDM_APP_ID},
        {"deviceId": "0f0f0f0f-0000-0000-0000-000000000000"},
    ],
)
def test_held_intune_records_are_dropped_when_intune_wrote_on_the_device(
    moved: dict[str, Any],
) -> None:
    change = Facts(at(5), {"id": OBJECT_ID, **moved})
    decided = plan(change, stored(), stored_deleted=False, required=REQUIRED)
    assert decided.facts is not None and decided.facts.managed is None


def test_an_intune_list_read_before_a_newer_reread_keeps_the_newer_records() -> None:
    newer = {**RECORD, "complianceState": "inGracePeriod"}
    held = stored(observed_at=at(3), managed=(newer,), managed_at=at(3))
    baseline_item = Facts(at(4), FULL, (RECORD,), managed_at=at(1))

    decided = plan(baseline_item, held, stored_deleted=False, required=REQUIRED)

    assert decided.facts is not None and decided.facts.managed == (newer,)
    assert decided.facts.observed_at == at(4)


def test_an_intune_list_read_after_the_stored_records_wins() -> None:
    later = {**RECORD, "complianceState": "noncompliant"}
    decided = plan(
        Facts(at(6), FULL, (later,), at(5)), stored(), stored_deleted=False, required=REQUIRED
    )
    assert decided.facts is not None and decided.facts.managed == (later,)


def test_a_reread_that_skipped_intune_keeps_what_is_held() -> None:
    read = Facts(at(9), FULL)
    assert with_held_intune(read, stored(), False).managed == (RECORD,)
    assert with_held_intune(read, stored(), True).managed is None
    assert with_held_intune(read, None, False).managed is None


# --- merging items of one response ----------------------------------------------------------


@pytest.mark.parametrize(
    ("earlier", "later", "merged"),
    [
        (None, {"id": "a", "x": 1}, {"id": "a", "x": 1}),
        ({"id": "a", "x": 1, "y": 1}, {"id": "a", "y": 2}, {"id": "a", "x": 1, "y": 2}),
        ({"id": "a", "x": 1}, {"id": "a", "@removed": {"reason": "deleted"}}, None),
        ({"id": "a", "@removed": {"reason": "changed"}}, {"id": "a", "x": 2}, {"id": "a", "x": 2}),
        ({"id": "a", "@odata.etag": "1"}, {"id": "a", "@odata.type": "#d"}, {"id": "a"}),
    ],
)
def test_merge_items(
    earlier: dict[str, Any] | None, later: dict[str, Any], merged: dict[str, Any] | None
) -> None:
    assert merge_items(earlier, later) == (merged if merged is not None else later)


def test_completeness_counts_null_as_sent_and_absence_as_not() -> None:
    assert complete({**FULL, "isManaged": None}, REQUIRED)
    assert not complete({k: v for k, v in FULL.items() if k != "isManaged"}, REQUIRED)
    assert complete({"id": OBJECT_ID, "@removed": {"reason": "deleted"}}, REQUIRED)


# --- two Intune records for one device (issue 13 item 12) -----------------------------------


def test_the_newest_record_is_chosen_by_instant_not_by_text() -> None:
    # 20:00 at -08:00 is 04:00 UTC the next day: later than 03:00Z, though it sorts first as text.
    pacific = {**RECORD, "id": "new", "lastSyncDateTime": "2026-11-29T20:00:00-08:00"}
    utc = {**RECORD, "id": "old", "lastSyncDateTime": "2026-11-30T03:00:00Z"}
    assert max([pacific, utc], key=lambda r: str(r["lastSyncDateTime"]))["id"] == "old"  # the bug
    assert newest_record([pacific, utc]) == pacific
    assert newest_record([utc, pacific]) == pacific


@pytest.mark.parametrize(
    ("records", "chosen"),
    [
        ([], None),
        ([{"id": "a"}], "a"),
        ([{"id": "a"}, {"id": "b", "lastSyncDateTime": "2026-01-01T00:00:00Z"}], "b"),
        ([{"id": "a", "lastSyncDateTime": "not a time"}, {"id": "b"}], "a"),
        (
            [
                {"id": "a", "lastSyncDateTime": "2026-11-30T03:00:00.1234567Z"},
                {"id": "b", "lastSyncDateTime": "2026-11-30T03:00:00.1234561Z"},
            ],
            "a",
        ),
    ],
)
def test_newest_record_edges(records: list[dict[str, Any]], chosen: str | None) -> None:
    found = newest_record(records)
    assert (found["id"] if found else None) == chosen


def test_snapshots_evaluate_the_newest_record() -> None:
    older = {**RECORD, "id": "old", "lastSyncDateTime": "2026-11-30T03:00:00Z"}
    newer = {**RECORD, "id": "new", "lastSyncDateTime": "2026-11-29T20:00:00-08:00"}
    device, managed = snapshots(Facts(at(0), FULL, (older, newer), at(0)))
    assert device.object_id == OBJECT_ID and managed is not None
    assert managed.managed_device_id == "new"
    assert snapshots(Facts(at(0), FULL, ()))[1] is None


# --- which devices may have an Intune record ------------------------------------------------

PARTNER_APP_ID = "9c0e6ed4-0cc9-4e49-a4e5-6e4e0e3bd0c3"  # any app id that is not Intune's


@pytest.mark.parametrize(
    ("device", "may"),
    [
        ({"isManaged": True, "mdmAppId": INTUNE_MDM_APP_ID}, True),
        ({"isManaged": True, "mdmAppId": INTUNE_MDM_APP_ID.upper()}, True),
        # A third-party MDM, or an Intune compliance partner: the partner is the MDM authority.
        ({"isManaged": True, "mdmAppId": PARTNER_APP_ID, "isCompliant": True}, False),
        ({"isManaged": True, "mdmAppId": PARTNER_APP_ID, "isCompliant": False}, False),
        ({"isManaged": False, "mdmAppId": PARTNER_APP_ID}, False),
        # No MDM at all.
        ({"isManaged": False, "mdmAppId": None}, False),
        ({"isManaged": False}, False),
        # Not enough said: read rather than miss a record.
        ({"isManaged": True, "mdmAppId": None}, True),
        ({"isManaged": None, "mdmAppId": None}, True),
        ({}, True),
        ({"isManaged": True, "mdmAppId": "  "}, True),
        # beta's managementType is "set by Intune": Intune has the device, whoever its MDM is.
        ({"isManaged": True, "mdmAppId": PARTNER_APP_ID, "managementType": "jamf"}, True),
        ({"isManaged": False, "managementType": "eas"}, True),
        ({"isManaged": False, "managementType": "unknown"}, False),
    ],
)
def test_may_have_intune_record(device: dict[str, Any], may: bool) -> None:
    assert may_have_intune_record({"id": OBJECT_ID, **device}) is may


@pytest.mark.parametrize(
    ("after", "changed"),
    [
        ({}, False),
        ({"displayName": "OTHER"}, False),
        ({"approximateLastSignInDateTime": "2026-11-30T00:00:00Z"}, False),
        ({"isCompliant": False}, True),
        ({"complianceExpirationDateTime": "2026-12-01T00:00:00Z"}, True),
    ],
)
def test_intune_written_changed(after: dict[str, Any], changed: bool) -> None:
    assert intune_written_changed(FULL, {**FULL, **after}) is changed


# --- facts on the queue and in the table ----------------------------------------------------


def test_facts_round_trip_through_json() -> None:
    facts = Facts(at(1), FULL, (RECORD,), at(0))
    assert Facts.from_json(facts.to_json()) == facts
    bare = Facts(at(1), {"id": OBJECT_ID, "displayName": "X"})
    assert Facts.from_json(bare.to_json()) == bare
    assert "managed" not in json.loads(bare.to_json())


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        "[]",
        '{"device": {"id": "d"}}',
        '{"observedAt": "2026-11-30T00:00:00Z"}',
        '{"observedAt": "2026-11-30T00:00:00Z", "device": {}}',
        '{"observedAt": "yesterday", "device": {"id": "d"}}',
        '{"observedAt": "2026-11-30T00:00:00Z", "device": {"id": "d"}, "managed": {}}',
        '{"observedAt": "2026-11-30T00:00:00Z", "device": {"id": "d"}, "managed": [1]}',
    ],
)
def test_unreadable_facts_say_so(raw: str) -> None:
    with pytest.raises(ObservationError):
        Facts.from_json(raw)


def test_a_change_carries_its_observation_and_a_broken_one_becomes_a_bare_hint() -> None:
    facts = Facts(at(1), FULL, (RECORD,), at(0))
    change = DeviceChange(OBJECT_ID, "updated", Source.SYNC, "m", "m", "t", facts=facts)
    assert DeviceChange.from_json(change.to_json()) == change

    body = json.loads(change.to_json())
    body["observation"]["observedAt"] = "never"
    assert DeviceChange.from_json(json.dumps(body)).facts is None
    assert DeviceChange.from_json(json.dumps(body)).device_id == OBJECT_ID


def test_a_message_stays_far_below_service_bus_limits() -> None:
    # A full device with an alternativeSecurityIds key (base64 of a certificate hash) and its
    # Intune record is about a kilobyte; Service Bus standard allows 256 KB a message.
    device = {
        **FULL,
        "alternativeSecurityIds": [{"type": 2, "identityProvider": None, "key": "A" * 200}],
    }
    change = DeviceChange(
        OBJECT_ID,
        "updated",
        Source.SYNC,
        "m" * 32,
        "m" * 32,
        at(0).isoformat(),
        facts=Facts(at(1), device, (RECORD,), at(0)),
    )
    assert len(change.to_json()) < 2_000
    huge = Facts(at(1), {**FULL, "displayName": "x" * MAX_OBSERVATION_CHARS})
    assert not huge.fits_a_message()


def test_same_facts_ignore_when_they_were_observed() -> None:
    assert same_facts(Facts(at(1), FULL, (RECORD,)), Facts(at(9), FULL, (RECORD,), at(9)))
    assert not same_facts(Facts(at(1), FULL, (RECORD,)), Facts(at(1), FULL))
    assert not same_facts(Facts(at(1), FULL), None)
    assert same_facts(None, None)
