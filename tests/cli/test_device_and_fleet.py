"""`devicemon device` and `devicemon fleet` against a fleet seeded through the real pipeline."""

from __future__ import annotations

import csv
import io
import json

import pytest

from cli import errors
from tests.cli.conftest import devicemon
from tests.cli.seed import ELIGIBLE, INELIGIBLE, TWINS, Fleet


async def test_device_by_name_shows_verdict_reasons_in_words_and_timeline(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str]
) -> None:
    result = await devicemon(capsys, fleet_env, "device", "laptop-0042")

    assert result.code == errors.OK, result.err
    out = result.out
    assert out.startswith("LAPTOP-0042: INELIGIBLE since ")
    assert fleet.ids["LAPTOP-0042"] in out
    assert "NOT_COMPLIANT: Intune marks the device as not compliant" in out
    assert "What to do: Open the device in Intune" in out
    timeline = out[out.index("Timeline, newest first") :]
    assert timeline.index("v2 ") < timeline.index("v1 ")
    assert "lost: INELIGIBLE" in timeline and "first seen: eligible" in timeline
    assert "compliance: compliant → noncompliant" in timeline
    assert "why: not compliant, not hybrid joined" in timeline
    assert "\033[" not in out  # not a terminal: no colour codes


async def test_device_by_object_id_and_by_device_id_as_json(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str]
) -> None:
    by_id = await devicemon(capsys, fleet_env, "device", fleet.ids["CAD-WS-11"], "--json")
    by_device_id = await devicemon(
        capsys, fleet_env, "device", fleet.device_ids["CAD-WS-11"], "--json", "--limit", "1"
    )

    assert (by_id.code, by_device_id.code) == (errors.OK, errors.OK)
    body = json.loads(by_id.out)
    assert body["device"]["displayName"] == "CAD-WS-11"
    assert body["device"]["reasons"] == ["DEVICE_DISABLED"]
    assert [h["transition"] for h in body["history"]] == ["first_seen"]
    assert json.loads(by_device_id.out)["device"]["objectId"] == fleet.ids["CAD-WS-11"]


async def test_device_by_object_id_in_upper_case(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str]
) -> None:
    object_id = fleet.ids["CAD-WS-11"]

    result = await devicemon(capsys, fleet_env, "device", object_id.upper(), "--json")

    assert result.code == errors.OK, result.err
    assert json.loads(result.out)["device"]["objectId"] == object_id


async def test_a_name_shared_by_two_devices_lists_both_and_exits_ambiguous(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str]
) -> None:
    result = await devicemon(capsys, fleet_env, "device", "Shared-PC")

    assert result.code == errors.AMBIGUOUS
    assert result.out == ""
    head, columns, *rows = result.err.splitlines()
    assert head.startswith("2 devices are named 'Shared-PC'; pass an object id.")
    assert columns.split() == [
        "OBJECT",
        "ID",
        "NAME",
        "JOIN",
        "TYPE",
        "OS",
        "LAST",
        "SIGN-IN",
        "REGISTERED",
        "NOW",
    ]
    # The one that signed in last comes first: it is most likely the device in use.
    expected = [
        [fleet.ids[twin], name, "Entra", "joined", "Windows", "11", "23H2", at[1][:10], at[0][:10]]
        for twin, name in (("SHARED-PC#2", "shared-pc"), ("SHARED-PC#1", "SHARED-PC"))
        for at in [TWINS[twin]]
    ]
    assert [row.split()[:-1] for row in rows] == expected


@pytest.mark.parametrize(
    "target", ["NO-SUCH-PC", "00000000-0000-4000-8000-000000000000"], ids=["name", "id"]
)
async def test_unknown_device_exits_not_found(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str], target: str
) -> None:
    result = await devicemon(capsys, fleet_env, "device", target)

    assert result.code == errors.NOT_FOUND
    assert f"no device '{target}'" in result.err


async def test_fleet_table_counts_by_join_type_os_and_reason(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str]
) -> None:
    result = await devicemon(capsys, fleet_env, "fleet", "--ineligible")

    assert result.code == errors.OK, result.err
    out = result.out
    assert out.startswith(
        f"Fleet: {ELIGIBLE + INELIGIBLE} devices, {ELIGIBLE} eligible (57.1%), "
        f"{INELIGIBLE} ineligible"
    )
    assert "Entra hybrid joined" in out and "Windows 8.1" in out and "Android 14" in out
    reasons = out[out.index("Ineligible devices by reason") :].splitlines()
    assert next(r for r in reasons if "NOT_COMPLIANT" in r).split() == [
        "NOT_COMPLIANT",
        "2",
        "not",
        "compliant",
    ]
    listed = out[out.index("Ineligible devices (3)") :]
    assert listed.index("CAD-WS-11") < listed.index("LAPTOP-0042") < listed.index("PIXEL-BYOD-19")
    # An Android phone fails a compliant-or-hybrid policy on compliance alone (issue 13 item 3).
    assert "disabled in Entra ID" in listed and "not compliant" in listed
    assert "not joined" not in listed


async def test_fleet_json_and_csv_carry_the_same_numbers(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str]
) -> None:
    as_json = await devicemon(capsys, fleet_env, "fleet", "--json", "--ineligible")
    summary_csv = await devicemon(capsys, fleet_env, "fleet", "--csv")
    devices_csv = await devicemon(capsys, fleet_env, "fleet", "--csv", "--ineligible")

    body = json.loads(as_json.out)
    assert body["summary"]["devices"] == ELIGIBLE + INELIGIBLE
    assert body["summary"]["byReason"]["NOT_COMPLIANT"] == 2
    assert body["summary"]["byJoinType"]["hybrid_joined"]["devices"] == 3
    assert sorted(d["displayName"] for d in body["devices"]) == [
        "CAD-WS-11",
        "LAPTOP-0042",
        "PIXEL-BYOD-19",
    ]
    rows = list(csv.DictReader(io.StringIO(summary_csv.out)))
    overall = next(r for r in rows if r["dimension"] == "all")
    assert (overall["devices"], overall["eligible"], overall["ineligible"]) == ("7", "4", "3")
    devices = list(csv.DictReader(io.StringIO(devices_csv.out)))
    laptop = next(d for d in devices if d["displayName"] == "LAPTOP-0042")
    assert laptop["reasons"] == "NOT_COMPLIANT NOT_HYBRID_JOINED"
    assert laptop["reasonsInWords"] == "not compliant, not hybrid joined"


async def test_fleet_filters_narrow_what_is_counted(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str]
) -> None:
    android = await devicemon(capsys, fleet_env, "fleet", "--os", "android", "--json")
    bad = await devicemon(capsys, fleet_env, "fleet", "--reason", "NOPE")

    assert json.loads(android.out)["summary"]["devices"] == 1
    assert bad.code == errors.USAGE
    assert "--reason must be one of" in bad.err
