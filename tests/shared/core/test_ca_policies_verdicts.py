"""One policy's verdict on one device: scope (platforms, device filter in include or exclude
mode), grant controls, state, and what devicemon cannot decide.

Policies as Graph returns them (`conditionalaccesspolicy.md`); the filter page's three scenarios
(entra-docs `concept-condition-filters-for-devices.md`, "Common scenarios") as policies; devices
in Graph's device JSON shape (`device-list.md`)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.ca_policies import PolicyState, compile_policy
from shared.core.ca_verdicts import (
    BLOCKED,
    DeviceVerdict,
    Outcome,
    PolicyVerdict,
    ca_platform,
    judge,
    judge_device,
)

INTUNE = "0000000a-0000-0000-c000-000000000000"
NO_EXTENSIONS = {f"extensionAttribute{n}": None for n in range(1, 16)}
WINDOWS: dict[str, Any] = {
    "id": "000005c3-b7a6-4c61-89fc-80bf5ccfc366",
    "deviceId": "6fa60d52-01e7-4b18-8055-4759461fc16b",
    "displayName": "DESKTOP-858MANH",
    "accountEnabled": True,
    "operatingSystem": "Windows",
    "operatingSystemVersion": "10.0.19043.1165",
    "trustType": "AzureAd",
    "isCompliant": True,
    "isManaged": True,
    "mdmAppId": INTUNE,
    "profileType": "RegisteredDevice",
    "alternativeSecurityIds": [{"type": 2, "identityProvider": None, "key": "WAA1ADAAOQA6AD..."}],
    "extensionAttributes": NO_EXTENSIONS,
}


def with_(device: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**device, **changes}


IPHONE = with_(WINDOWS, operatingSystem="iOS", operatingSystemVersion="17.5", trustType="Workplace")


def make(
    controls: list[str],
    operator: str = "OR",
    state: str = "enabled",
    platforms: dict[str, list[str]] | None = None,
    device_filter: dict[str, str] | None = None,
    **conditions: Any,
) -> dict[str, Any]:
    return {
        "id": "6b5e999b-0ba8-4186-a106-e0296c1c4358",
        "displayName": "Policy under test",
        "state": state,
        "conditions": {
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["All"]},
            "platforms": platforms,
            "devices": None if device_filter is None else {"deviceFilter": device_filter},
            **conditions,
        },
        "grantControls": {"operator": operator, "builtInControls": controls},
    }


def verdict(policy: dict[str, Any], device: dict[str, Any]) -> PolicyVerdict:
    return judge(compile_policy(policy), device)


@pytest.mark.parametrize(
    ("operating_system", "platform"),
    [
        ("Windows", "windows"),
        ("Windows Server 2022 Datacenter", "windows"),
        ("WINDOWS", "windows"),
        ("iOS", "iOS"),
        ("IPad", "iOS"),
        ("iPadOS", "iOS"),
        ("Android", "android"),
        ("AndroidForWork", "android"),
        ("AndroidEnterprise", "android"),
        ("MacMDM", "macOS"),
        ("macOS", "macOS"),
        ("Mac OS X", "macOS"),
        ("Linux", "linux"),
        ("Ubuntu", "linux"),
        ("WindowsPhone", "windowsPhone"),
        ("Windows Phone", "windowsPhone"),
        ("Windows Mobile", None),
        ("ChromeOS", None),
        ("", None),
        (None, None),
    ],
)
def test_the_platform_of_an_operating_system(operating_system: Any, platform: str | None) -> None:
    assert ca_platform(operating_system) == platform


@pytest.mark.parametrize(
    ("platforms", "device", "outcome"),
    [
        (None, IPHONE, Outcome.FAILS),  # "The default is to apply to all device platforms"
        ({"includePlatforms": ["all"], "excludePlatforms": []}, IPHONE, Outcome.FAILS),
        ({"includePlatforms": ["iOS"], "excludePlatforms": []}, IPHONE, Outcome.FAILS),
        ({"includePlatforms": ["android"], "excludePlatforms": []}, IPHONE, Outcome.NOT_APPLICABLE),
        (
            {"includePlatforms": ["all"], "excludePlatforms": ["iOS"]},
            IPHONE,
            Outcome.NOT_APPLICABLE,
        ),
        (
            {"includePlatforms": ["iOS"], "excludePlatforms": ["all"]},
            IPHONE,
            Outcome.NOT_APPLICABLE,
        ),
        # unknownFutureValue may or may not be this device's platform
        (
            {"includePlatforms": ["unknownFutureValue"], "excludePlatforms": []},
            IPHONE,
            Outcome.NOT_UNDERSTOOD,
        ),
        (
            {"includePlatforms": ["iOS", "unknownFutureValue"], "excludePlatforms": []},
            IPHONE,
            Outcome.FAILS,
        ),
        (
            {"includePlatforms": ["all"], "excludePlatforms": ["unknownFutureValue"]},
            IPHONE,
            Outcome.NOT_UNDERSTOOD,
        ),
        (
            {"includePlatforms": ["all"], "excludePlatforms": ["iOS", "unknownFutureValue"]},
            IPHONE,
            Outcome.NOT_APPLICABLE,
        ),
        (
            {"includePlatforms": ["android", "unknownFutureValue"], "excludePlatforms": []},
            IPHONE,
            Outcome.NOT_UNDERSTOOD,
        ),
        # a device whose platform devicemon cannot name: only "all" decides
        (
            {"includePlatforms": ["all"], "excludePlatforms": []},
            with_(IPHONE, operatingSystem="ChromeOS"),
            Outcome.FAILS,
        ),
        (
            {"includePlatforms": ["iOS"], "excludePlatforms": []},
            with_(IPHONE, operatingSystem="ChromeOS"),
            Outcome.NOT_UNDERSTOOD,
        ),
        (
            {"includePlatforms": ["iOS"], "excludePlatforms": []},
            with_(IPHONE, operatingSystem=None),
            Outcome.NOT_UNDERSTOOD,
        ),
    ],
)
def test_platform_conditions(
    platforms: dict[str, list[str]] | None, device: dict[str, Any], outcome: Outcome
) -> None:
    noncompliant = with_(device, isCompliant=False)
    assert verdict(make(["compliantDevice"], platforms=platforms), noncompliant).outcome is outcome


@pytest.mark.parametrize(
    ("mode", "rule", "outcome"),
    [
        # include mode: the policy applies to the devices the rule matches
        ("include", 'device.operatingSystem -eq "Windows"', Outcome.FAILS),
        ("include", 'device.operatingSystem -eq "iOS"', Outcome.NOT_APPLICABLE),
        # exclude mode: matching devices are left out
        ("exclude", 'device.operatingSystem -eq "Windows"', Outcome.NOT_APPLICABLE),
        ("exclude", 'device.operatingSystem -eq "iOS"', Outcome.FAILS),
        # a rule devicemon does not understand, or whose property it did not read
        ("include", 'device.displayName -match "^DESKTOP"', Outcome.NOT_UNDERSTOOD),
        ("exclude", 'device.model -eq "Surface"', Outcome.NOT_UNDERSTOOD),
    ],
)
def test_device_filter_modes(mode: str, rule: str, outcome: Outcome) -> None:
    device = with_(WINDOWS, isCompliant=False)
    policy = make(["compliantDevice"], device_filter={"mode": mode, "rule": rule})
    assert verdict(policy, device).outcome is outcome


def test_an_undecided_scope_does_not_matter_when_the_device_passes() -> None:
    policy = make(
        ["compliantDevice"], device_filter={"mode": "include", "rule": 'device.model -eq "x"'}
    )
    assert verdict(policy, WINDOWS).outcome is Outcome.PASSES
    failing = verdict(policy, with_(WINDOWS, isCompliant=False))
    assert failing.outcome is Outcome.NOT_UNDERSTOOD
    assert failing.notes == (
        "device filter 'device.model -eq \"x\"' undecided: device.model was not read",
        "would fail: NOT_COMPLIANT",
    )


def test_an_undefined_filter_mode_leaves_the_scope_undecided() -> None:
    policy = make(
        ["compliantDevice"], device_filter={"mode": "only", "rule": 'device.model -eq "x"'}
    )
    assert verdict(policy, with_(WINDOWS, isCompliant=False)).outcome is Outcome.NOT_UNDERSTOOD
    # but a platform condition that leaves the device out still decides
    policy["conditions"]["platforms"] = {"includePlatforms": ["android"], "excludePlatforms": []}
    assert verdict(policy, WINDOWS).outcome is Outcome.NOT_APPLICABLE


@pytest.mark.parametrize(
    ("controls", "operator", "device", "outcome", "reasons"),
    [
        (["compliantDevice"], "OR", WINDOWS, Outcome.PASSES, ()),
        (
            ["compliantDevice"],
            "OR",
            with_(WINDOWS, isCompliant=False),
            Outcome.FAILS,
            ("NOT_COMPLIANT",),
        ),
        (
            ["compliantDevice"],
            "OR",
            with_(WINDOWS, isCompliant=None),
            Outcome.FAILS,
            ("COMPLIANCE_UNKNOWN",),
        ),
        (["domainJoinedDevice"], "OR", WINDOWS, Outcome.FAILS, ("NOT_HYBRID_JOINED",)),
        (["domainJoinedDevice"], "OR", IPHONE, Outcome.FAILS, ("NOT_JOINED",)),
        (["domainJoinedDevice"], "OR", with_(WINDOWS, trustType="ServerAd"), Outcome.PASSES, ()),
        (["compliantDevice", "domainJoinedDevice"], "OR", WINDOWS, Outcome.PASSES, ()),
        (
            ["compliantDevice", "domainJoinedDevice"],
            "OR",
            with_(WINDOWS, isCompliant=False),
            Outcome.FAILS,
            ("NOT_COMPLIANT", "NOT_HYBRID_JOINED"),
        ),
        (
            ["compliantDevice", "domainJoinedDevice"],
            "AND",
            WINDOWS,
            Outcome.FAILS,
            ("NOT_HYBRID_JOINED",),
        ),
        (
            ["compliantDevice", "domainJoinedDevice"],
            "AND",
            with_(WINDOWS, trustType="ServerAd"),
            Outcome.PASSES,
            (),
        ),
        (
            ["mfa", "compliantDevice"],
            "AND",
            with_(WINDOWS, isCompliant=False),
            Outcome.FAILS,
            ("NOT_COMPLIANT",),
        ),
        # the device controls as an alternative to MFA: nothing is asked of the device
        (
            ["mfa", "compliantDevice"],
            "OR",
            with_(WINDOWS, isCompliant=False),
            Outcome.NOT_APPLICABLE,
            (),
        ),
        (["mfa"], "OR", with_(WINDOWS, isCompliant=False), Outcome.NOT_APPLICABLE, ()),
        (
            ["compliantDevice"],
            "OR",
            with_(WINDOWS, accountEnabled=False),
            Outcome.FAILS,
            ("DEVICE_DISABLED",),
        ),
        (
            ["domainJoinedDevice"],
            "OR",
            with_(WINDOWS, trustType="ServerAd", profileType=None, alternativeSecurityIds=[]),
            Outcome.FAILS,
            ("HYBRID_JOIN_PENDING",),
        ),
        # an undocumented control: under AND a failure is certain, a pass is not
        (
            ["compliantDevice", "unknownFutureValue"],
            "AND",
            with_(WINDOWS, isCompliant=False),
            Outcome.FAILS,
            ("NOT_COMPLIANT",),
        ),
        (["compliantDevice", "unknownFutureValue"], "AND", WINDOWS, Outcome.NOT_UNDERSTOOD, ()),
        # under OR a pass is certain, a failure is not
        (["compliantDevice", "unknownFutureValue"], "OR", WINDOWS, Outcome.PASSES, ()),
        (
            ["compliantDevice", "unknownFutureValue"],
            "OR",
            with_(WINDOWS, isCompliant=False),
            Outcome.NOT_UNDERSTOOD,
            (),
        ),
        (["unknownFutureValue"], "AND", WINDOWS, Outcome.NOT_UNDERSTOOD, ()),
        (["compliantDevice"], "XOR", WINDOWS, Outcome.PASSES, ()),
        (["compliantDevice", "mfa"], "XOR", WINDOWS, Outcome.NOT_UNDERSTOOD, ()),
    ],
)
def test_grant_controls(
    controls: list[str],
    operator: str,
    device: dict[str, Any],
    outcome: Outcome,
    reasons: tuple[str, ...],
) -> None:
    result = verdict(make(controls, operator), device)
    assert (result.outcome, result.reasons) == (outcome, reasons)


def test_a_block_counts_against_a_device_only_when_a_device_condition_scopes_it() -> None:
    unscoped = verdict(make(["block"], clientAppTypes=["exchangeActiveSync", "other"]), WINDOWS)
    assert unscoped.outcome is Outcome.NOT_APPLICABLE
    assert unscoped.conditional_on == ("clientAppTypes",)
    everything = make(["block"], platforms={"includePlatforms": ["all"], "excludePlatforms": []})
    assert verdict(everything, WINDOWS).outcome is Outcome.NOT_APPLICABLE
    android = make(["block"], platforms={"includePlatforms": ["android"], "excludePlatforms": []})
    assert verdict(android, WINDOWS).outcome is Outcome.NOT_APPLICABLE
    blocked = verdict(android, with_(WINDOWS, operatingSystem="Android"))
    assert (blocked.outcome, blocked.reasons) == (Outcome.FAILS, (BLOCKED,))
    undecided = make(["block"], device_filter={"mode": "include", "rule": 'device.model -eq "x"'})
    assert verdict(undecided, WINDOWS).outcome is Outcome.NOT_UNDERSTOOD


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("enabled", Outcome.FAILS),
        ("enabledForReportingButNotEnforced", Outcome.FAILS),
        ("disabled", Outcome.NOT_APPLICABLE),
        ("paused", Outcome.NOT_UNDERSTOOD),
    ],
)
def test_states(state: str, outcome: Outcome) -> None:
    result = verdict(make(["compliantDevice"], state=state), with_(WINDOWS, isCompliant=False))
    assert result.outcome is outcome


def test_an_undocumented_state_out_of_scope_is_still_not_applicable() -> None:
    policy = make(["compliantDevice"], state="paused")
    policy["conditions"]["platforms"] = {"includePlatforms": ["android"], "excludePlatforms": []}
    assert verdict(policy, WINDOWS).outcome is Outcome.NOT_APPLICABLE


def test_the_deprecated_device_state_condition_leaves_the_scope_undecided() -> None:
    policy = make(["compliantDevice"])
    policy["conditions"]["devices"] = {
        "includeDeviceStates": ["All"],
        "excludeDeviceStates": ["Compliant"],
    }
    assert verdict(policy, with_(WINDOWS, isCompliant=False)).outcome is Outcome.NOT_UNDERSTOOD
    assert verdict(policy, WINDOWS).outcome is Outcome.PASSES


def test_a_device_json_of_the_wrong_types_is_not_guessed() -> None:
    result = verdict(make(["compliantDevice"]), with_(WINDOWS, isCompliant="yes"))
    assert result.outcome is Outcome.NOT_UNDERSTOOD
    assert "isCompliant" in result.notes[0]


# The filter page's "Common scenarios", as policies.
SCENARIO_1_POLICY_2 = make(
    ["block"], device_filter={"mode": "exclude", "rule": 'device.extensionAttribute1 -eq "SAW"'}
)
# "excluding those with devices where the rule expression device.operatingSystem == 'Windows'
# and device.operatingSystemVersion startsWith '10.0' applies", in the documented syntax
SCENARIO_2 = make(
    ["block"],
    device_filter={
        "mode": "exclude",
        "rule": 'device.operatingSystem -eq "Windows" -and device.operatingSystemVersion -startsWith "10.0"',
    },
)
# policy 2, as written: "excluding a filter for devices using rule expression
# device.extensionAttribute2 not equals TeamsPhoneDevice ... Block"
SCENARIO_3_POLICY_2 = make(
    ["block"],
    device_filter={"mode": "exclude", "rule": 'device.extensionAttribute2 -ne "TeamsPhoneDevice"'},
)
SAW = with_(WINDOWS, extensionAttributes={**NO_EXTENSIONS, "extensionAttribute1": "SAW"})
TEAMS_PHONE = with_(
    IPHONE,
    operatingSystem="Android",
    extensionAttributes={
        **NO_EXTENSIONS,
        "extensionAttribute2": "TeamsPhoneDevice",
    },
)
WINDOWS_8_1 = with_(WINDOWS, operatingSystemVersion="6.3.9600")


@pytest.mark.parametrize(
    ("policy", "device", "outcome"),
    [
        (SCENARIO_1_POLICY_2, SAW, Outcome.NOT_APPLICABLE),
        (SCENARIO_1_POLICY_2, WINDOWS, Outcome.FAILS),
        (SCENARIO_2, WINDOWS, Outcome.NOT_APPLICABLE),
        (SCENARIO_2, WINDOWS_8_1, Outcome.FAILS),
        (SCENARIO_2, IPHONE, Outcome.FAILS),  # the rule as written blocks every non-Windows device
        # the exclude filter leaves out what is not a Teams phone: the block falls on the phones
        (SCENARIO_3_POLICY_2, TEAMS_PHONE, Outcome.FAILS),
        (SCENARIO_3_POLICY_2, WINDOWS, Outcome.NOT_APPLICABLE),
    ],
)
def test_the_filter_pages_scenarios(
    policy: dict[str, Any], device: dict[str, Any], outcome: Outcome
) -> None:
    assert verdict(policy, device).outcome is outcome


def _verdict(outcome: Outcome, state: PolicyState | None) -> PolicyVerdict:
    return PolicyVerdict("id", "name", state, outcome)


@pytest.mark.parametrize(
    ("verdicts", "eligible"),
    [
        ([], True),
        ([(Outcome.PASSES, PolicyState.ENABLED)], True),
        ([(Outcome.FAILS, PolicyState.REPORT_ONLY)], True),
        ([(Outcome.NOT_UNDERSTOOD, PolicyState.REPORT_ONLY)], True),
        ([(Outcome.NOT_UNDERSTOOD, PolicyState.ENABLED)], None),
        ([(Outcome.NOT_UNDERSTOOD, None)], None),
        (
            [(Outcome.NOT_UNDERSTOOD, PolicyState.ENABLED), (Outcome.FAILS, PolicyState.ENABLED)],
            False,
        ),
        ([(Outcome.FAILS, PolicyState.ENABLED)], False),
    ],
)
def test_eligibility_is_failing_no_enforced_policy(
    verdicts: list[tuple[Outcome, PolicyState | None]], eligible: bool | None
) -> None:
    assert DeviceVerdict(tuple(_verdict(o, s) for o, s in verdicts)).eligible is eligible


def test_judge_device_keeps_the_policies_order() -> None:
    policies = [
        compile_policy({**make(["compliantDevice"]), "id": "a", "displayName": "A"}),
        compile_policy(
            {**make(["domainJoinedDevice"], state="enabledForReportingButNotEnforced"), "id": "b"}
        ),
    ]
    result = judge_device(policies, WINDOWS)
    assert [v.policy_id for v in result.verdicts] == ["a", "b"]
    assert result.blocking_policies == ()
    assert [v.policy_id for v in result.report_only_failures] == ["b"]
