"""Words for Intune compliance settings and the parser of deviceCompliancePolicyStates payloads.

Payloads follow the documented shapes (microsoft-graph-docs-contrib: the deviceCompliancePolicyState
list example and intune-deviceconfig-devicecompliancepolicysettingstate.md); setting names are the
ones Intune reports (Class.Property, e.g. Windows10CompliancePolicy.BitLockerEnabled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.core import compliance_settings as cs
from shared.core.compliance_details import (
    GRAPH_ERROR,
    INVALID_RESPONSE,
    PERMISSION_MISSING,
    UNAVAILABLE_REASONS,
    ComplianceDetails,
    FailingPolicy,
    FailingSetting,
    parse_policy_states,
    policies_needing_setting_states,
    unavailable,
)

ALL_STATES = [
    "unknown",
    "notApplicable",
    "compliant",
    "remediated",
    "nonCompliant",
    "error",
    "conflict",
    "notAssigned",
]
FAILING = ["nonCompliant", "error", "conflict"]


def setting_state(setting: str, state: str, **extra: Any) -> dict[str, Any]:
    """A deviceCompliancePolicySettingState as the resource documents it."""
    body: dict[str, Any] = {
        "@odata.type": "microsoft.graph.deviceCompliancePolicySettingState",
        "setting": setting,
        "settingName": setting.rsplit(".", 1)[-1],
        "instanceDisplayName": None,
        "state": state,
        "errorCode": 0,
        "errorDescription": None,
        "userId": "2f4a3b1c-0000-4000-8000-000000000001",
        "userName": "Adele Vance",
        "userEmail": "adelev@contoso.com",
        "userPrincipalName": "adelev@contoso.com",
        "sources": [
            {
                "@odata.type": "microsoft.graph.settingSource",
                "id": "9d5c1c8e-1111-4111-8111-000000000001",
                "displayName": "Windows 11 baseline",
            }
        ],
        "currentValue": None,
    }
    body.update(extra)
    return body


def policy_state(
    policy_id: str,
    name: str,
    state: str,
    settings: list[dict[str, Any]] | None,
    **extra: Any,
) -> dict[str, Any]:
    """A deviceCompliancePolicyState as the list example of the docs shows it."""
    body: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.deviceCompliancePolicyState",
        "id": policy_id,
        "displayName": name,
        "version": 7,
        "platformType": "windows10AndLater",
        "state": state,
        "settingCount": len(settings or []),
        "userId": "2f4a3b1c-0000-4000-8000-000000000001",
        "userPrincipalName": "adelev@contoso.com",
    }
    if settings is not None:
        body["settingStates"] = settings
    body.update(extra)
    return body


def listing(*policies: dict[str, Any]) -> dict[str, Any]:
    return {"value": list(policies)}


# --- states -------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ALL_STATES)
def test_every_documented_state_is_known_and_failing_only_when_it_blocks(state: str) -> None:
    meaning = cs.state_meaning(state)
    assert meaning.state == state
    assert meaning.failing is (state in FAILING)
    assert meaning.meaning.endswith(".")
    assert cs.canonical_state(state.upper()) == state
    assert cs.canonical_state(f"  {state.lower()} ") == state


def test_the_failing_states_are_exactly_noncompliant_error_and_conflict() -> None:
    assert set(cs.FAILING_STATES) == set(FAILING)
    assert set(cs.STATES) == set(ALL_STATES)


@pytest.mark.parametrize("raw", ["unknownFutureValue", "pending", ""])
def test_an_unknown_state_is_kept_as_it_came_and_does_not_count_as_failing(raw: str) -> None:
    assert cs.canonical_state(raw) == raw
    assert cs.state_meaning(raw).failing is False


def test_a_missing_state_reads_as_empty() -> None:
    assert cs.canonical_state(None) == ""


# --- the table --------------------------------------------------------------------------------

TABLE = sorted(cs.KNOWN_PROPERTIES)


@pytest.mark.parametrize("prop", TABLE)
@pytest.mark.parametrize(
    "policy_class", ["Windows10CompliancePolicy", "iosCompliancePolicy", "DefaultDevice", ""]
)
def test_every_property_in_the_table_is_found_under_any_class_and_case(
    prop: str, policy_class: str
) -> None:
    name = f"{policy_class}.{prop}" if policy_class else prop
    words = cs.words_for(name)
    assert words is not None
    assert cs.words_for(name.upper()) == words
    assert cs.words_for(name.lower()) == words


@pytest.mark.parametrize(
    "setting",
    [f"AndroidDeviceOwnerCompliancePolicy.{p}" for p in TABLE] + sorted(cs.KNOWN_SETTINGS),
)
@pytest.mark.parametrize("state", FAILING)
def test_every_known_setting_gets_a_sentence_and_a_fix_in_every_failing_state(
    setting: str, state: str
) -> None:
    words = cs.words_for(setting)
    assert words is not None
    text = cs.describe_setting(setting, state, policy_name="Phones")
    assert text.known is True
    assert text.sentence.endswith(".") and text.fix.endswith(".")
    if state == "nonCompliant":
        assert text.sentence == words.problem
        assert text.fix == words.fix
    else:
        assert words.subject in text.sentence
    if state == "conflict":
        assert words.subject in text.fix


@pytest.mark.parametrize("setting", sorted(cs.KNOWN_SETTINGS))
def test_platform_words_win_over_the_generic_words_of_their_property(setting: str) -> None:
    assert cs.words_for(setting) != cs.words_for(setting.rsplit(".", 1)[1])
    assert cs.words_for(setting.swapcase()) == cs.words_for(setting)


@pytest.mark.parametrize(
    ("setting", "subject"),
    [
        # Names as Intune reports them (setting state summaries and per-device setting states).
        ("Windows10CompliancePolicy.BitLockerEnabled", "BitLocker"),
        ("Windows10CompliancePolicy.SecureBootEnabled", "Secure Boot"),
        ("Windows10CompliancePolicy.secureBootEnabled", "Secure Boot"),
        ("Windows10CompliancePolicy.CodeIntegrityEnabled", "code integrity"),
        ("Windows10CompliancePolicy.OsMinimumVersion", "minimum OS version"),
        ("Windows10CompliancePolicy.OsMaximumVersion", "maximum OS version"),
        ("Windows10CompliancePolicy.ActiveFirewallRequired", "firewall"),
        ("Windows10CompliancePolicy.AntivirusRequired", "antivirus"),
        ("Windows10CompliancePolicy.AntiSpywareRequired", "antispyware"),
        ("Windows10CompliancePolicy.DefenderEnabled", "Microsoft Defender Antimalware"),
        ("Windows10CompliancePolicy.SignatureOutOfDate", "Defender security intelligence"),
        ("Windows10CompliancePolicy.RtpEnabled", "real-time protection"),
        ("Windows10CompliancePolicy.TpmRequired", "TPM"),
        ("Windows10CompliancePolicy.StorageRequireEncryption", "storage encryption"),
        ("Windows10CompliancePolicy.PasswordMinimumLength", "password length"),
        ("Windows10CompliancePolicy.PasswordBlockSimple", "simple passwords"),
        (
            "Windows10CompliancePolicy.DeviceThreatProtectionRequiredSecurityLevel",
            "device threat level",
        ),
        ("IOSCompliancePolicy.DeviceThreatProtectionRequiredSecurityLevel", "device threat level"),
        ("IOSCompliancePolicy.PasscodeRequired", "password"),
        ("IOSCompliancePolicy.SecurityBlockJailbrokenDevices", "jailbreak"),
        ("AndroidCompliancePolicy.SecurityBlockJailbrokenDevices", "root"),
        ("AndroidWorkProfileCompliancePolicy.SecurityBlockJailbrokenDevices", "root"),
        ("AndroidDeviceOwnerCompliancePolicy.SecurityBlockJailbrokenDevices", "jailbreak or root"),
        ("MacOSCompliancePolicy.StorageRequireEncryption", "FileVault"),
        ("MacOSCompliancePolicy.SystemIntegrityProtectionEnabled", "System Integrity Protection"),
        ("DefaultDeviceCompliancePolicy.RequireRemainContact", "check-in with Intune"),
        (
            "DefaultDeviceCompliancePolicy.RequireDeviceCompliancePolicyAssigned",
            "compliance policy assignment",
        ),
        ("DefaultDeviceCompliancePolicy.RequireUserExistence", "enrolled user"),
    ],
)
def test_names_intune_reports_resolve_to_their_words(setting: str, subject: str) -> None:
    words = cs.words_for(setting)
    assert words is not None
    assert words.subject == subject


@pytest.mark.parametrize(
    "setting",
    [
        "Windows10CompliancePolicy.SomethingNew",
        "DefaultDeviceCompliancePolicy.AdminConfiguredCompliance",
        "Setting value",  # the placeholder of the documented example
        "CustomComplianceScript.DiskSpaceFreeGB",
    ],
)
@pytest.mark.parametrize("state", FAILING)
def test_an_unknown_setting_is_named_as_intune_names_it(setting: str, state: str) -> None:
    assert cs.words_for(setting) is None
    text = cs.describe_setting(setting, state, policy_name="Windows 11 baseline")
    assert text.known is False
    assert setting in text.sentence
    assert setting in text.fix and "'Windows 11 baseline'" in text.fix


def test_an_unknown_setting_without_a_policy_name_points_to_its_policy() -> None:
    text = cs.describe_setting("Foo.Bar", "nonCompliant")
    assert "its compliance policy" in text.fix


@pytest.mark.parametrize("known", ["Windows10CompliancePolicy.RtpEnabled", "Foo.Unknown"])
def test_intunes_error_description_is_quoted_for_errors(known: str) -> None:
    text = cs.describe_setting(known, "error", error_description="  0x87d1fde8 Remediation failed ")
    assert text.sentence.endswith("Intune says: 0x87d1fde8 Remediation failed")


def test_a_state_spelled_differently_is_described_as_its_canonical_state() -> None:
    assert cs.describe_setting("X.BitLockerEnabled", "CONFLICT") == cs.describe_setting(
        "X.BitLockerEnabled", "conflict"
    )


# --- the parser -------------------------------------------------------------------------------

BASELINE = "b1f4a1a2-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
DEFENDER = "c2e5b2b3-4d5e-4f60-9bac-1d2e3f4a5b6c"


def test_the_documented_list_example_has_nothing_failing() -> None:
    # The values of the docs' own example: a notApplicable setting in a notApplicable policy.
    doc = listing(
        {
            "@odata.type": "#microsoft.graph.deviceCompliancePolicyState",
            "id": "2999e387-e387-2999-87e3-992987e39929",
            "settingStates": [
                {
                    "@odata.type": "microsoft.graph.deviceCompliancePolicySettingState",
                    "setting": "Setting value",
                    "settingName": "Setting Name value",
                    "instanceDisplayName": "Instance Display Name value",
                    "state": "notApplicable",
                    "errorCode": 9,
                    "errorDescription": "Error Description value",
                    "userId": "User Id value",
                    "userName": "User Name value",
                    "userEmail": "User Email value",
                    "userPrincipalName": "User Principal Name value",
                    "sources": [
                        {
                            "@odata.type": "microsoft.graph.settingSource",
                            "id": "Id value",
                            "displayName": "Display Name value",
                        }
                    ],
                    "currentValue": "Current Value value",
                }
            ],
            "displayName": "Display Name value",
            "version": 7,
            "platformType": "iOS",
            "state": "notApplicable",
            "settingCount": 12,
        }
    )
    details = parse_policy_states(doc)
    assert details == ComplianceDetails()
    assert details.unavailable is None
    assert policies_needing_setting_states(doc) == []


def test_bitlocker_off_names_the_policy_and_the_setting() -> None:
    body = listing(
        policy_state(
            BASELINE,
            "Windows 11 baseline",
            "nonCompliant",
            [
                setting_state("Windows10CompliancePolicy.BitLockerEnabled", "nonCompliant"),
                setting_state("Windows10CompliancePolicy.SecureBootEnabled", "compliant"),
                setting_state("Windows10CompliancePolicy.OsMaximumVersion", "notApplicable"),
            ],
        ),
        policy_state(
            DEFENDER, "Defender", "compliant", [setting_state("X.RtpEnabled", "compliant")]
        ),
    )
    details = parse_policy_states(body)
    words = cs.words_for("BitLockerEnabled")
    assert words is not None
    assert details.failing_policies == (
        FailingPolicy(BASELINE, "Windows 11 baseline", "nonCompliant"),
    )
    assert details.failing_settings == (
        FailingSetting(
            "Windows10CompliancePolicy.BitLockerEnabled",
            "nonCompliant",
            BASELINE,
            "Windows 11 baseline",
            words.problem,
            words.fix,
        ),
    )


@pytest.mark.parametrize("state", ALL_STATES)
def test_a_setting_is_kept_only_in_a_failing_state(state: str) -> None:
    body = listing(
        policy_state(BASELINE, "Baseline", "nonCompliant", [setting_state("W.RtpEnabled", state)])
    )
    details = parse_policy_states(body)
    assert [s.state for s in details.failing_settings] == ([state] if state in FAILING else [])


@pytest.mark.parametrize("state", ALL_STATES)
def test_a_policy_is_kept_only_in_a_failing_state(state: str) -> None:
    details = parse_policy_states(listing(policy_state(BASELINE, "Baseline", state, [])))
    assert [p.state for p in details.failing_policies] == ([state] if state in FAILING else [])


def test_error_and_conflict_and_an_unknown_setting_are_all_reported() -> None:
    body = listing(
        policy_state(
            BASELINE,
            "Baseline",
            "error",
            [
                setting_state(
                    "Windows10CompliancePolicy.ActiveFirewallRequired",
                    "error",
                    errorCode=-2016281112,
                    errorDescription="Remediation failed",
                ),
                setting_state("Windows10CompliancePolicy.PasswordMinimumLength", "conflict"),
                setting_state("Windows10CompliancePolicy.SomethingNew", "nonCompliant"),
            ],
        )
    )
    details = parse_policy_states(body)
    assert [(s.setting, s.state) for s in details.failing_settings] == [
        ("Windows10CompliancePolicy.ActiveFirewallRequired", "error"),
        ("Windows10CompliancePolicy.PasswordMinimumLength", "conflict"),
        ("Windows10CompliancePolicy.SomethingNew", "nonCompliant"),
    ]
    firewall, password, unknown = details.failing_settings
    assert firewall.sentence.endswith("Intune says: Remediation failed")
    assert "password length" in password.sentence
    assert "Windows10CompliancePolicy.SomethingNew" in unknown.sentence


def test_an_error_description_of_a_noncompliant_setting_is_not_quoted() -> None:
    body = listing(
        policy_state(
            BASELINE,
            "B",
            "nonCompliant",
            [setting_state("W.TpmRequired", "nonCompliant", errorDescription="ignored")],
        )
    )
    assert "ignored" not in parse_policy_states(body).failing_settings[0].sentence


def test_a_setting_reported_for_each_user_is_listed_once() -> None:
    per_user = [
        setting_state("W.BitLockerEnabled", "nonCompliant", userPrincipalName=upn)
        for upn in ("System account", "adelev@contoso.com", "alexw@contoso.com")
    ]
    body = listing(policy_state(BASELINE, "B", "nonCompliant", per_user))
    assert len(parse_policy_states(body).failing_settings) == 1


def test_the_same_setting_in_two_policies_is_listed_for_each() -> None:
    body = listing(
        policy_state(
            BASELINE, "A", "nonCompliant", [setting_state("W.RtpEnabled", "nonCompliant")]
        ),
        policy_state(
            DEFENDER, "B", "nonCompliant", [setting_state("W.RtpEnabled", "nonCompliant")]
        ),
    )
    assert [s.policy_name for s in parse_policy_states(body).failing_settings] == ["A", "B"]


def test_setting_states_read_separately_fill_in_a_policy_that_came_without_them() -> None:
    body = listing(
        policy_state(BASELINE, "Baseline", "nonCompliant", None, settingCount=3),
        policy_state(DEFENDER, "Defender", "nonCompliant", [], settingCount=2),
        policy_state(
            "c0ffee00-0000-4000-8000-000000000000", "Ok", "compliant", None, settingCount=4
        ),
        policy_state(
            "c0ffee00-0000-4000-8000-000000000001", "Empty", "error", None, settingCount=0
        ),
    )
    assert policies_needing_setting_states(body) == [BASELINE, DEFENDER]
    separate = {
        BASELINE: {"value": [setting_state("W.SecureBootEnabled", "nonCompliant")]},
        DEFENDER: {"value": [setting_state("W.SignatureOutOfDate", "error")]},
    }
    details = parse_policy_states(body, separate)
    assert [(s.policy_id, s.setting) for s in details.failing_settings] == [
        (BASELINE, "W.SecureBootEnabled"),
        (DEFENDER, "W.SignatureOutOfDate"),
    ]
    assert len(details.failing_policies) == 3


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ({"setting": "", "settingName": "Require BitLocker"}, "Require BitLocker"),
        ({"setting": None, "settingName": None}, "(unnamed setting)"),
        ({}, "(unnamed setting)"),
    ],
)
def test_a_setting_without_its_name_is_still_shown(raw: dict[str, Any], shown: str) -> None:
    body = listing(policy_state(BASELINE, "B", "nonCompliant", [{"state": "nonCompliant", **raw}]))
    assert parse_policy_states(body).failing_settings[0].setting == shown


def test_a_policy_without_a_display_name_is_named_by_its_id_and_states_are_normalised() -> None:
    body = listing(
        {
            "id": BASELINE,
            "state": "NONCOMPLIANT",
            "settingStates": [{"setting": "A.B", "state": "Error"}],
        }
    )
    details = parse_policy_states(body)
    assert details.failing_policies == (FailingPolicy(BASELINE, BASELINE, "nonCompliant"),)
    assert details.failing_settings[0].state == "error"


def test_a_bare_list_is_read_like_a_collection_and_junk_items_are_skipped() -> None:
    items = [policy_state(BASELINE, "B", "conflict", []), "junk", 3]
    assert parse_policy_states(items).failing_policies == (
        FailingPolicy(BASELINE, "B", "conflict"),
    )


@pytest.mark.parametrize("body", [None, "text", 42, {"value": "x"}, {"error": {"code": "x"}}])
def test_an_answer_without_a_list_is_unavailable_not_empty(body: Any) -> None:
    details = parse_policy_states(body)
    assert details.unavailable == INVALID_RESPONSE
    assert details.failing_policies == () and details.failing_settings == ()
    assert policies_needing_setting_states(body) == []


# --- alert data ---------------------------------------------------------------------------------


def test_details_round_trip_through_json() -> None:
    body = listing(
        policy_state(
            BASELINE,
            "Baseline",
            "nonCompliant",
            [
                setting_state("W.BitLockerEnabled", "nonCompliant"),
                setting_state("Foo.Bar", "error"),
            ],
        )
    )
    details = parse_policy_states(body)
    data = details.to_json()
    assert data["failingPolicies"] == [
        {"id": BASELINE, "displayName": "Baseline", "state": "nonCompliant"}
    ]
    assert [s["setting"] for s in data["failingSettings"]] == ["W.BitLockerEnabled", "Foo.Bar"]
    assert set(data["failingSettings"][0]) == {
        "setting",
        "state",
        "policyId",
        "policyName",
        "sentence",
        "fix",
    }
    assert ComplianceDetails.from_json(data) == details


@pytest.mark.parametrize("reason", [PERMISSION_MISSING, GRAPH_ERROR])
def test_unavailable_details_carry_the_reason_and_no_lists(reason: str) -> None:
    details = unavailable(reason, "HTTP 403 Forbidden")
    data = details.to_json()
    assert data == {"unavailable": {"reason": reason, "detail": "HTTP 403 Forbidden"}}
    assert "failingPolicies" not in data and "failingSettings" not in data
    assert ComplianceDetails.from_json(data) == details


# --- the doc ------------------------------------------------------------------------------------

DOC = (Path(__file__).resolve().parents[3] / "docs" / "compliance-details.md").read_text()


@pytest.mark.parametrize("reason", UNAVAILABLE_REASONS)
def test_every_reason_for_unavailable_details_is_documented(reason: str) -> None:
    assert f"| `{reason}` |" in DOC


@pytest.mark.parametrize("state", ALL_STATES)
def test_every_state_is_in_the_documented_table(state: str) -> None:
    assert f"`{state}`" in DOC
