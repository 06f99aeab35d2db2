"""Adaptive Cards: valid against the 1.4 schema they declare, Workflows-safe, under 28 KB, and
saying in plain words which device, what happened, why, when, how and where to look."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from local.teams_sink import describe_card, shape_error
from shared.consumers.noise import Flip, MassSummary
from shared.consumers.noise_cards import (
    FLAP_CAUSES,
    MASS_CAUSES,
    MASS_RESTORED,
    flapping_card,
    mass_card,
)
from shared.consumers.teams_cards import (
    CARD_VERSION,
    MAX_MESSAGE_BYTES,
    MAX_SETTINGS,
    alert_card,
    entra_url,
    intune_url,
    message,
    message_size,
)
from shared.core import explain
from shared.core.alert_view import AlertView, parse_alert
from shared.core.compliance_details import (
    UNAVAILABLE_REASONS,
    ComplianceDetails,
    parse_policy_states,
    unavailable,
)
from tests.alert_helpers import T0, make_alert

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "data" / "adaptive-card-1.4.schema.json").read_text()
)
VALIDATOR = jsonschema.Draft6Validator(SCHEMA)
# What a Teams Workflows post can render: no Action.Submit / Action.Execute (no bot behind it).
ALLOWED_ACTIONS = {"Action.OpenUrl", "Action.ShowCard", "Action.ToggleVisibility"}
ALL_REASONS = tuple(explain.REASONS)
HUGE = "X" * 5000


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def texts(card: dict[str, Any]) -> str:
    parts = []
    for node in walk(card):
        if node.get("type") == "TextBlock":
            parts.append(node["text"])
        if "title" in node and "value" in node:
            parts.append(f"{node['title']}: {node['value']}")
    return "\n".join(parts)


# A reason, warning or setting code: capitals joined by underscores.
CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def text_places(node: Any, around: tuple[str, ...] = ()) -> Iterator[tuple[dict[str, Any], str]]:
    """Each TextBlock with where it sits: 'full' (the card's width), 'auto' (an auto-width
    column), 'narrow' (any other column)."""
    if isinstance(node, list):
        for item in node:
            yield from text_places(item, around)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "TextBlock":
        yield node, around[-1] if around else "full"
        return
    if node.get("type") == "Column":
        around = (*around, "auto" if node.get("width") == "auto" else "narrow")
    for key, value in node.items():
        if key != "card":  # a ShowCard's card is a new, full-width card
            yield from text_places(value, around)
        else:
            yield from text_places(value, ())


def check_codes_never_wrap(card: dict[str, Any]) -> None:
    """Teams breaks a word that does not fit its column mid-word. A FactSet's title column is
    capped in width, so a code is never in a FactSet; a code stands in a full-width text, or
    alone in an auto-width column that does not wrap."""
    for node in walk(card):
        if node.get("type") == "FactSet":
            for fact in node["facts"]:
                assert not CODE.search(fact["title"] + " " + fact["value"]), fact
    for block, place in text_places(card["body"]):
        if CODE.search(block["text"]):
            assert place == "full" or (place == "auto" and block["wrap"] is False), block
            if place == "auto":
                assert CODE.fullmatch(block["text"]), block  # alone in its column


def check(card: dict[str, Any]) -> None:
    """Everything every card must satisfy."""
    VALIDATOR.validate(card)
    check_codes_never_wrap(card)
    assert card["version"] == CARD_VERSION == "1.4"
    assert card["type"] == "AdaptiveCard"
    kinds = {n["type"] for n in walk(card) if str(n.get("type", "")).startswith("Action.")}
    assert kinds <= ALLOWED_ACTIONS
    payload = message(card)
    assert shape_error(payload) is None
    assert payload["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert message_size(payload) < MAX_MESSAGE_BYTES


def view(**kwargs: Any) -> AlertView:
    return parse_alert(make_alert(**kwargs))


SCENARIOS: dict[str, dict[str, Any]] = {
    "lost-entra-intune": {},
    "lost-hybrid-disabled-unmanaged": {
        "reasons": ("DEVICE_DISABLED",),
        "join_type": "hybrid_joined",
        "management": "unmanaged",
        "managed_device_id": None,
        "upn": None,
    },
    "lost-deleted-nothing-known": {
        "reasons": ("DEVICE_DELETED",),
        "name": None,
        "device_id": None,
        "managed_device_id": None,
        "upn": None,
        "management": "unknown",
        "join_type": "unknown",
        "source": "sync",
    },
    "lost-all-reasons-warnings-grace": {
        "reasons": ALL_REASONS,
        "warnings": tuple(explain.WARNINGS),
        "compliance": "in_grace_period",
        "grace": T0 + timedelta(days=3),
    },
    "restored": {"lost": False, "reasons": ("NOT_COMPLIANT", "NOT_HYBRID_JOINED")},
    "restored-registered": {"lost": False, "reasons": ("NOT_JOINED",), "join_type": "registered"},
    "huge-values": {
        "name": HUGE,
        "upn": HUGE,
        "reasons": ALL_REASONS,
        "warnings": tuple(explain.WARNINGS),
    },
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_alert_cards_are_valid_adaptive_cards_for_workflows(scenario: str) -> None:
    check(alert_card(view(**SCENARIOS[scenario])))


@pytest.mark.parametrize("note", [None, "3 earlier change(s) of this device were not posted"])
def test_a_note_keeps_the_card_valid(note: str | None) -> None:
    card = alert_card(view(), note)
    check(card)
    assert ("Note: 3 earlier change(s)" in texts(card)) is (note is not None)


def test_lost_card_says_which_device_what_why_when_and_where() -> None:
    alert = view(reasons=("NOT_COMPLIANT", "NOT_HYBRID_JOINED"), warnings=("STALE_SIGN_IN",))
    card = alert_card(alert)
    words = texts(card)
    assert "LAPTOP-0042 no longer passes device-based Conditional Access" in words
    assert "Join type: Microsoft Entra joined" in words
    assert "OS: Windows 11 23H2 (10.0.22631.4460)" in words
    assert "Owner: adele.vance@contoso.example" in words
    for code in ("NOT_COMPLIANT", "NOT_HYBRID_JOINED"):
        assert f"**{code}**: {explain.reason(code).meaning}" in words
        assert f"What to do: {explain.reason(code).action}" in words
    assert explain.warning("STALE_SIGN_IN").meaning in words
    assert "Detected: 2026-11-29 10:00:00 UTC" in words
    assert "Detected by: a Microsoft Graph change notification" in words
    assert "CA requires: a compliant device or a hybrid joined device" in words
    links = {a["title"]: a["url"] for a in card["actions"] if a["type"] == "Action.OpenUrl"}
    assert links == {
        "Open in Entra admin center": entra_url(alert.object_id, alert.device_id),
        "Open in Intune": intune_url("7d0c3f5a-2b1e-4c8d-9e6f-0a1b2c3d4e5f"),
    }
    assert links["Open in Entra admin center"] == (
        "https://entra.microsoft.com/#view/Microsoft_AAD_Devices/DeviceDetailsMenuBlade/~/"
        f"Properties/objectId/{alert.object_id}/deviceId/6fa60d52-01e7-4b18-8055-4759461fc16b"
    )
    assert links["Open in Intune"] == (
        "https://intune.microsoft.com/#view/Microsoft_Intune_Devices/DeviceSettingsMenuBlade/~/"
        "overview/mdmDeviceId/7d0c3f5a-2b1e-4c8d-9e6f-0a1b2c3d4e5f"
    )


def test_restored_card_looks_different_and_says_what_was_fixed() -> None:
    lost = alert_card(view())
    restored = alert_card(view(lost=False, reasons=("NOT_COMPLIANT",)))
    assert lost["body"][0]["style"] == "attention"
    assert restored["body"][0]["style"] == "good"
    assert "LOST" in lost["body"][0]["items"][0]["text"]
    assert "RESTORED" in restored["body"][0]["items"][0]["text"]
    assert "passes device-based Conditional Access again" in texts(restored)
    assert f"**NOT_COMPLIANT** (resolved): {explain.reason('NOT_COMPLIANT').meaning}" in texts(
        restored
    )
    assert "What to do" not in texts(restored)


def test_without_an_intune_record_there_is_no_intune_link() -> None:
    card = alert_card(view(managed_device_id=None, device_id=None, management="unmanaged"))
    titles = [a["title"] for a in card["actions"]]
    assert titles == ["Open in Entra admin center", "Technical details"]
    assert card["actions"][0]["url"].endswith(
        "/objectId/" + card["actions"][0]["url"].split("/")[-1]
    )
    assert "/deviceId/" not in card["actions"][0]["url"]


def test_ids_are_url_encoded_in_links() -> None:
    assert entra_url("a/b c", None).endswith("/objectId/a%2Fb%20c")
    assert intune_url("x?y").endswith("/mdmDeviceId/x%3Fy")


def test_technical_details_carry_the_ids_to_correlate() -> None:
    alert = view()
    card = alert_card(alert)
    details = next(a for a in card["actions"] if a["type"] == "Action.ShowCard")
    words = texts(details["card"])
    for value in (alert.id, alert.object_id, "corr-1", "7d0c3f5a-2b1e-4c8d-9e6f-0a1b2c3d4e5f"):
        assert value in words


@pytest.mark.parametrize(
    ("system", "version", "shown"),
    [
        ("Windows", "10.0.26100.2314", "Windows 11 24H2 (10.0.26100.2314)"),
        ("Windows", "10.0.19045.5131", "Windows 10 22H2 (10.0.19045.5131)"),
        ("Windows", None, "Windows"),
        ("iOS", "17.5.1", "iOS 17 (17.5.1)"),
        (None, None, "unknown"),
    ],
)
def test_the_os_is_named_by_its_release_as_everywhere_else(
    system: str | None, version: str | None, shown: str
) -> None:
    alert = make_alert()
    alert["data"]["device"]["operatingSystem"] = system
    alert["data"]["device"]["operatingSystemVersion"] = version
    card = alert_card(parse_alert(alert))
    check(card)
    assert f"OS: {shown}" in texts(card)


def code_rows_of(card: dict[str, Any]) -> list[list[str]]:
    """The texts of each ColumnSet row that holds a code."""
    rows = []
    for node in walk(card):
        if node.get("type") == "ColumnSet":
            cells = [c["items"][0]["text"] for c in node["columns"]]
            if any(CODE.fullmatch(cell) for cell in cells):
                rows.append(cells)
    return rows


def flapping(reasons: list[tuple[str, ...]], lost_first: bool = True) -> list[Flip]:
    return [
        Flip(T0 + timedelta(minutes=i), (i % 2 == 0) is lost_first, codes)
        for i, codes in enumerate(reasons)
    ]


@pytest.mark.parametrize("lost", [True, False])
@pytest.mark.parametrize("count", [4, 40])
def test_flapping_card(lost: bool, count: int) -> None:
    alert = view(lost=lost, name=HUGE if count > 10 else "LAPTOP-0042")
    flips = flapping([("NOT_COMPLIANT",)] * count)
    card = flapping_card(alert, flips, 60, T0 + timedelta(minutes=60))
    check(card)
    words = texts(card)
    assert f"changed eligibility {count} times in 60 minutes" in words
    assert "no more cards for this device until 11:00 UTC" in words
    assert card["body"][0]["style"] == "warning"
    assert ("LOST eligibility" in words) is lost


@pytest.mark.parametrize("code", ALL_REASONS)
def test_the_flapping_card_names_the_reason_that_flips_and_where_to_look(code: str) -> None:
    flips = flapping([(code,)] * 4)
    card = flapping_card(view(reasons=(code,)), flips, 60, T0 + timedelta(minutes=60))
    check(card)
    rows = code_rows_of(card)
    assert [row[0] for row in rows] == [code]
    assert "twice" in rows[0][1]  # lost twice, restored twice
    assert FLAP_CAUSES[code] in texts(card)
    assert all(FLAP_CAUSES[other] not in texts(card) for other in FLAP_CAUSES if other != code)
    assert f"is flapping on {code} (4 changes)" in card["fallbackText"]


def test_a_device_flipping_on_two_reasons_lists_both_most_frequent_first() -> None:
    flips = flapping(
        [("DEVICE_DISABLED",), ("DEVICE_DISABLED",), ("NOT_COMPLIANT",), ("DEVICE_DISABLED",)]
    )
    card = flapping_card(view(reasons=("DEVICE_DISABLED",)), flips, 60, T0)
    check(card)
    assert [row[0] for row in code_rows_of(card)] == ["DEVICE_DISABLED", "NOT_COMPLIANT"]
    assert FLAP_CAUSES["DEVICE_DISABLED"] in texts(card)
    changes = next(
        n
        for n in walk(card)
        if n.get("type") == "FactSet" and n["facts"][0]["title"] == "29 Nov 10:00:00"
    )
    assert [f["value"].split(" ")[0] for f in changes["facts"]] == ["lost", "restored"] * 2


def test_flips_recorded_without_reasons_fall_back_on_the_alerts_own() -> None:
    flips = flapping([()] * 4)  # rows written before reasons were kept
    card = flapping_card(view(reasons=("COMPLIANCE_UNKNOWN",)), flips, 60, T0)
    check(card)
    assert [row[0] for row in code_rows_of(card)] == ["COMPLIANCE_UNKNOWN"]


def test_every_reason_has_a_flapping_and_a_mass_event_hint() -> None:
    assert set(FLAP_CAUSES) == set(explain.REASONS) == set(MASS_CAUSES)


@pytest.mark.parametrize("phase", ["start", "update", "end"])
def test_mass_card(phase: str) -> None:
    summary = MassSummary(
        phase=phase,
        first=T0,
        last=T0 + timedelta(minutes=7),
        lost=480,
        restored=20,
        reasons={"NOT_COMPLIANT": 470, "DEVICE_DISABLED": 10, **{f"X{i}": 1 for i in range(40)}},
        join_types={"entra_joined": 400, "hybrid_joined": 100},
        devices=tuple(f"{HUGE}-{i}" for i in range(30)),
        next_summary_at=2000,
    )
    card = mass_card(summary, 10)
    check(card)
    words = texts(card)
    assert "Lost eligibility: 480" in words
    assert code_rows_of(card)[:2] == [
        ["470", "NOT_COMPLIANT", explain.reason("NOT_COMPLIANT").short],
        ["10", "DEVICE_DISABLED", explain.reason("DEVICE_DISABLED").short],
    ]
    assert "470 of 500 share **NOT_COMPLIANT**" in words
    assert "Microsoft Entra joined: 400" in words
    assert "and 490 more" in words
    assert ("at 2000 devices" in words) is (phase != "end")
    assert ("Mass event over" in words) is (phase == "end")


@pytest.mark.parametrize("code", ALL_REASONS)
def test_the_mass_card_hint_follows_the_dominant_reason(code: str) -> None:
    others = [c for c in ALL_REASONS if c != code]
    summary = MassSummary("start", T0, T0, 100, 0, {code: 90, others[0]: 10})
    card = mass_card(summary, 10)
    check(card)
    hints = [t for t in texts(card).splitlines() if "share **" in t]
    assert hints == [f"90 of 100 share **{code}**: one common cause is likely. {MASS_CAUSES[code]}"]


def test_a_mass_event_of_devices_coming_back_says_the_cause_was_undone() -> None:
    summary = MassSummary("end", T0, T0, 3, 97, {"DEVICE_DISABLED": 100})
    words = texts(mass_card(summary, 10))
    assert MASS_RESTORED in words and MASS_CAUSES["DEVICE_DISABLED"] not in words


@pytest.mark.parametrize(
    "reasons",
    [{"NOT_COMPLIANT": 15, "DEVICE_DISABLED": 15}, {"NOT_COMPLIANT": 23}, {"SOME_NEW_CODE": 30}],
)
def test_mass_card_without_a_known_dominant_reason_guesses_no_cause(
    reasons: dict[str, int],
) -> None:
    summary = MassSummary("start", T0, T0, 30, 0, reasons)
    card = mass_card(summary, 10)
    check(card)
    assert "one common cause is likely" not in texts(card)


def test_sink_rejects_what_workflows_would() -> None:
    assert shape_error({"type": "message", "attachments": []}) is not None
    assert shape_error({"attachments": [{"contentType": "x"}]}) is not None
    card = alert_card(view())
    assert shape_error({"type": "message", "attachments": [{"contentType": "x", "content": card}]})


# --- failing compliance policies and settings (issue 16) ---------------------------------------

BASELINE_ID = "3b7c9d2e-5f41-4a8b-9c6d-7e8f9a0b1c2d"


def policy_states(*settings: tuple[str, str]) -> dict[str, Any]:
    """A deviceCompliancePolicyStates answer in the documented shape (its list example)."""
    return {
        "value": [
            {
                "@odata.type": "#microsoft.graph.deviceCompliancePolicyState",
                "id": BASELINE_ID,
                "displayName": "Windows 11 security baseline",
                "state": "nonCompliant",
                "platformType": "windows10AndLater",
                "version": 2,
                "settingCount": len(settings),
                "settingStates": [
                    {
                        "@odata.type": "microsoft.graph.deviceCompliancePolicySettingState",
                        "setting": name,
                        "settingName": name.rsplit(".", 1)[-1],
                        "state": state,
                        "errorCode": 0,
                    }
                    for name, state in settings
                ],
            }
        ]
    }


def with_details(details: ComplianceDetails, **kwargs: Any) -> AlertView:
    alert = make_alert(**kwargs)
    alert["data"]["compliance"] = details.to_json()
    return parse_alert(alert)


def test_a_lost_card_names_the_failing_setting_its_fix_and_its_policy() -> None:
    details = parse_policy_states(
        policy_states(
            ("Windows10CompliancePolicy.BitLockerEnabled", "nonCompliant"),
            ("Windows10CompliancePolicy.SecureBootEnabled", "compliant"),
        )
    )
    card = alert_card(with_details(details))
    check(card)
    words = texts(card)
    assert "Failing compliance settings" in words
    assert "BitLocker drive encryption is off" in words
    assert "Fix: Turn on BitLocker" in words
    assert "Windows 11 security baseline" in words
    assert "Windows10CompliancePolicy.BitLockerEnabled" in words
    assert "Secure Boot" not in words  # met: not failing
    assert "BitLocker drive encryption is off" in card["fallbackText"]
    # The demo's one-line view of the card names the setting and the fix too.
    assert "BitLocker drive encryption is off" in describe_card(card)
    assert "Fix: Turn on BitLocker" in describe_card(card)


def test_an_unknown_setting_is_shown_as_intune_names_it() -> None:
    details = parse_policy_states(
        policy_states(("Windows10CompliancePolicy.ContosoNewCheck", "nonCompliant"))
    )
    words = texts(alert_card(with_details(details)))
    assert "The device does not meet the setting Windows10CompliancePolicy.ContosoNewCheck" in words


def test_many_failing_settings_are_cut_and_counted_and_the_card_stays_small() -> None:
    names = [f"Windows10CompliancePolicy.Custom{n}{HUGE}" for n in range(40)]
    details = parse_policy_states(policy_states(*((n, "error") for n in names)))
    card = alert_card(with_details(details, name=HUGE))
    check(card)
    assert f"…and {40 - MAX_SETTINGS} more" in texts(card)


@pytest.mark.parametrize("reason", UNAVAILABLE_REASONS)
def test_when_intune_could_not_be_read_the_card_says_why(reason: str) -> None:
    card = alert_card(
        with_details(unavailable(reason, "grant DeviceManagementConfiguration.Read.All"))
    )
    check(card)
    assert f"Not read from Intune ({reason})" in texts(card)
    assert "open the device in Intune" in texts(card)
    if reason == "permission_missing":
        assert "DeviceManagementConfiguration.Read.All" in texts(card)


def test_a_restored_card_and_an_alert_without_details_have_no_compliance_section() -> None:
    assert "Failing compliance" not in texts(alert_card(view()))
    assert "Failing compliance" not in texts(alert_card(with_details(ComplianceDetails())))
