"""A tenant of fourteen realistic Conditional Access policies and eleven devices: which enforced
policies block each device, which report-only ones it would fail, which devicemon cannot decide.

Policies are in the shape of microsoft-graph-docs-contrib `conditionalaccessroot-list-policies.md`
(`{"value": [conditionalAccessPolicy, ...]}`, each as in `conditionalaccessroot-post-policies.md`'s
responses); devices in the shape of `device-list.md`. The expected verdicts follow the documents:
- grant controls: entra-docs `concept-conditional-access-grant.md` ("Require all the selected
  controls" = AND, "Require one of the selected controls" = OR; the default is all);
- platforms: `conditionalaccessplatforms.md`, `concept-conditional-access-conditions.md`;
- filters: `concept-condition-filters-for-devices.md` (the SAW, unsupported-OS and Teams-phone
  scenarios; include/exclude modes; extension attributes only on Intune managed, compliant or
  hybrid joined devices);
- report-only: `conditionalaccesspolicy.md` state `enabledForReportingButNotEnforced`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.ca_policies import compile_policies
from shared.core.ca_verdicts import judge_device
from shared.core.evaluation import EvaluationOptions, evaluate
from shared.core.models import Warning_
from shared.core.policy_eligibility import CompiledPolicySet, apply_policies
from shared.core.snapshots import device_from_json

ALL_USERS = {
    "includeUsers": ["All"],
    "excludeUsers": [],
    "includeGroups": [],
    "excludeGroups": ["5d7a2b1c-0000-4000-8000-00000000b6a5"],  # emergency access accounts
    "includeRoles": [],
    "excludeRoles": [],
}
ADMINS = {**ALL_USERS, "includeUsers": [], "includeRoles": ["62e90394-69f5-4237-9190-012177145e10"]}
ALL_APPS = {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": []}
AZURE_MANAGEMENT = {**ALL_APPS, "includeApplications": ["797f4846-ba00-4fd7-ba43-dac1f8f63013"]}


def policy(
    number: int,
    name: str,
    controls: list[str],
    operator: str = "OR",
    state: str = "enabled",
    platforms: dict[str, list[str]] | None = None,
    device_filter: dict[str, str] | None = None,
    users: dict[str, Any] = ALL_USERS,
    applications: dict[str, Any] = ALL_APPS,
    client_app_types: tuple[str, ...] = ("all",),
) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-0000000000{number:02d}",
        "displayName": name,
        "createdDateTime": "2026-01-05T09:00:00Z",
        "modifiedDateTime": None,
        "state": state,
        "sessionControls": None,
        "conditions": {
            "userRiskLevels": [],
            "signInRiskLevels": [],
            "clientAppTypes": list(client_app_types),
            "platforms": platforms,
            "locations": None,
            "devices": None if device_filter is None else {"deviceFilter": device_filter},
            "applications": applications,
            "users": users,
        },
        "grantControls": {
            "operator": operator,
            "builtInControls": controls,
            "customAuthenticationFactors": [],
            "termsOfUse": [],
        },
    }


SUPPORTED = ["android", "iOS", "windows", "macOS", "linux"]
POLICIES = {
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies",
    "value": [
        policy(1, "CA01 Compliant or hybrid joined", ["compliantDevice", "domainJoinedDevice"]),
        policy(
            2,
            "CA02 Mobile devices compliant",
            ["compliantDevice"],
            platforms={"includePlatforms": ["android", "iOS"], "excludePlatforms": []},
        ),
        # a device control offered as an alternative to MFA: not a requirement
        policy(3, "CA03 MFA or compliant device", ["mfa", "compliantDevice"]),
        policy(
            4,
            "CA04 Windows hybrid joined (report-only)",
            ["domainJoinedDevice"],
            state="enabledForReportingButNotEnforced",
            platforms={"includePlatforms": ["windows"], "excludePlatforms": []},
        ),
        # "a policy for unsupported device platforms ... includes any device and excludes
        # supported device platforms and Grant control set to Block access"
        policy(
            5,
            "CA05 Block unsupported platforms",
            ["block"],
            platforms={"includePlatforms": ["all"], "excludePlatforms": SUPPORTED},
        ),
        # the filter page's scenario 1, policy 2: admins, Azure management, exclude SAW, block
        policy(
            6,
            "CA06 Admins only from SAW",
            ["block"],
            device_filter={"mode": "exclude", "rule": 'device.extensionAttribute1 -eq "SAW"'},
            users=ADMINS,
            applications=AZURE_MANAGEMENT,
        ),
        policy(
            7,
            "CA07 Kiosks compliant",
            ["compliantDevice"],
            operator="AND",
            device_filter={"mode": "include", "rule": 'device.extensionAttribute1 -eq "Kiosk"'},
        ),
        # scenario 1, policy 1: MFA and compliant: the device must be compliant
        policy(
            8,
            "CA08 Admins MFA and compliant",
            ["mfa", "compliantDevice"],
            operator="AND",
            users=ADMINS,
            applications=AZURE_MANAGEMENT,
        ),
        # issue 14's own example filter: servers left out
        policy(
            9,
            "CA09 Windows compliant except servers",
            ["compliantDevice"],
            platforms={"includePlatforms": ["windows"], "excludePlatforms": []},
            device_filter={"mode": "exclude", "rule": 'device.trustType -eq "ServerAD"'},
        ),
        # block legacy authentication: a block on client apps, not on devices
        policy(
            10,
            "CA10 Block legacy authentication",
            ["block"],
            client_app_types=("exchangeActiveSync", "other"),
        ),
        policy(11, "CA11 Old compliance policy", ["compliantDevice"], state="disabled"),
        policy(
            12,
            "CA12 Windows compliant and hybrid (report-only)",
            ["compliantDevice", "domainJoinedDevice"],
            operator="AND",
            state="enabledForReportingButNotEnforced",
            platforms={"includePlatforms": ["windows"], "excludePlatforms": []},
        ),
        # -match is a dynamic-group operator the filter page does not list: not understood
        policy(
            13,
            "CA13 Lab machines hybrid",
            ["domainJoinedDevice"],
            device_filter={"mode": "include", "rule": 'device.displayName -match "^LAB"'},
        ),
        # a grant control Graph hides behind unknownFutureValue
        policy(
            14,
            "CA14 Macs compliant plus a future control",
            ["compliantDevice", "unknownFutureValue"],
            operator="AND",
            platforms={"includePlatforms": ["macOS"], "excludePlatforms": []},
        ),
    ],
}

INTUNE = "0000000a-0000-0000-c000-000000000000"
NO_EXTENSIONS = {f"extensionAttribute{n}": None for n in range(1, 16)}


def device(name: str, **properties: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"object/{name}")),
        "deviceId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"device/{name}")),
        "displayName": name,
        "accountEnabled": True,
        "operatingSystem": "Windows",
        "operatingSystemVersion": "10.0.22631.4460",
        "trustType": "AzureAd",
        "isCompliant": True,
        "isManaged": True,
        "mdmAppId": INTUNE,
        "profileType": "RegisteredDevice",
        "alternativeSecurityIds": [
            {"type": 2, "identityProvider": None, "key": "WAA1ADAAOQA6AD..."}
        ],
        "deviceOwnership": "Company",
        "enrollmentProfileName": None,
        "manufacturer": "Contoso",
        "model": "Laptop 7",
        "physicalIds": [],
        "systemLabels": [],
        "extensionAttributes": NO_EXTENSIONS,
    }
    return {**base, **properties}


DEVICES = {
    "hybrid-noncompliant": device(
        "DESKTOP-858MANH", trustType="ServerAd", isCompliant=False, isManaged=False, mdmAppId=None
    ),
    "entra-compliant": device("LAPTOP-0001"),
    "entra-noncompliant": device("LAPTOP-0042", isCompliant=False),
    "iphone": device(
        "Ana's iPhone", operatingSystem="iOS", operatingSystemVersion="17.5", trustType="Workplace"
    ),
    "android-personal": device(
        "Pixel 8",
        operatingSystem="AndroidForWork",
        operatingSystemVersion="14.0",
        trustType="Workplace",
        isCompliant=False,
        isManaged=False,
        mdmAppId=None,
        deviceOwnership="Personal",
        extensionAttributes={**NO_EXTENSIONS, "extensionAttribute1": "SAW"},
    ),
    "mac": device(
        "Neils MacBook Pro",
        operatingSystem="MacMDM",
        operatingSystemVersion="14.5",
        trustType="Workplace",
    ),
    "chromebook": device(
        "CHROMEBOOK-7",
        operatingSystem="ChromeOS",
        operatingSystemVersion="126",
        trustType="Workplace",
        isCompliant=False,
        isManaged=False,
        mdmAppId=None,
    ),
    "saw": device("SAW-0001", extensionAttributes={**NO_EXTENSIONS, "extensionAttribute1": "SAW"}),
    "kiosk": device(
        "KIOSK-LOBBY",
        isCompliant=False,
        extensionAttributes={**NO_EXTENSIONS, "extensionAttribute1": "Kiosk"},
    ),
    # pending hybrid: synced from AD, not registered yet (SupportArticles-docs pending-devices.md)
    "pending-hybrid": device(
        "DESKTOP-NEW01",
        trustType="ServerAd",
        isCompliant=None,
        isManaged=None,
        mdmAppId=None,
        profileType=None,
        alternativeSecurityIds=[],
    ),
    "disabled-saw": device(
        "SAW-0002",
        accountEnabled=False,
        extensionAttributes={**NO_EXTENSIONS, "extensionAttribute1": "SAW"},
    ),
}

# device -> (blocking enforced policies, failed report-only policies, undecided policies)
EXPECTED: dict[str, tuple[set[int], set[int], set[int]]] = {
    # passes CA01 by its join; CA06 blocks every non-SAW device; CA08 wants compliance; CA09 and
    # CA13 pass or leave it out by its ServerAd trust type
    "hybrid-noncompliant": ({6, 8}, {12}, set()),
    # not hybrid joined: fails the report-only hybrid policies and cannot tell whether CA13's
    # lab filter includes it
    "entra-compliant": ({6}, {4, 12}, {13}),
    "entra-noncompliant": ({1, 6, 8, 9}, {4, 12}, {13}),
    "iphone": ({6}, set(), {13}),
    # tagged SAW, but neither Intune managed, compliant nor hybrid joined: its extension
    # attributes read as null at evaluation, so CA06 does not leave it out
    "android-personal": ({1, 2, 6, 8}, set(), {13}),
    # compliant, but CA14 also requires a control devicemon cannot see
    "mac": ({6}, set(), {13, 14}),
    # a platform devicemon cannot name: every platform condition but "all" is undecided
    "chromebook": ({1, 6, 8}, set(), {2, 4, 5, 9, 12, 13, 14}),
    "saw": (set(), {4, 12}, {13}),
    "kiosk": ({1, 6, 7, 8, 9}, {4, 12}, {13}),
    "pending-hybrid": ({1, 6, 8}, {4, 12}, {13}),
    "disabled-saw": ({1, 8, 9}, {4, 12}, {13}),
}


def numbers(verdicts: tuple[Any, ...]) -> set[int]:
    return {int(v.policy_id[-2:]) for v in verdicts}


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_blocking_policies_of_every_device(name: str) -> None:
    verdict = judge_device(compile_policies(POLICIES), DEVICES[name])
    blocking, report_only, undecided = EXPECTED[name]
    assert numbers(verdict.blocking_policies) == blocking
    assert numbers(verdict.report_only_failures) == report_only
    assert numbers(verdict.undecided) == undecided
    enforced_undecided = undecided - {4, 12}
    assert verdict.eligible is (False if blocking else None if enforced_undecided else True)


def test_the_verdicts_name_the_policies_and_why() -> None:
    verdict = judge_device(compile_policies(POLICIES), DEVICES["entra-noncompliant"])
    named = {v.display_name: v.reasons for v in verdict.blocking_policies}
    assert named == {
        "CA01 Compliant or hybrid joined": ("NOT_COMPLIANT", "NOT_HYBRID_JOINED"),
        "CA06 Admins only from SAW": ("BLOCKED_BY_POLICY",),
        "CA08 Admins MFA and compliant": ("NOT_COMPLIANT",),
        "CA09 Windows compliant except servers": ("NOT_COMPLIANT",),
    }
    by_name = {v.display_name: v for v in verdict.verdicts}
    # what devicemon does not judge travels with the verdict
    assert by_name["CA06 Admins only from SAW"].conditional_on == ("applications", "users")
    assert by_name["CA01 Compliant or hybrid joined"].conditional_on == ("users",)
    assert "not understood at character 20" in by_name["CA13 Lab machines hybrid"].notes[0]


def test_pending_and_disabled_devices_say_so() -> None:
    policies = compile_policies(POLICIES)
    pending = judge_device(policies, DEVICES["pending-hybrid"]).blocking_policies
    assert {v.reasons for v in pending} == {("HYBRID_JOIN_PENDING",), ("BLOCKED_BY_POLICY",)}
    disabled = judge_device(policies, DEVICES["disabled-saw"]).blocking_policies
    assert {v.reasons for v in disabled} == {("DEVICE_DISABLED",)}


# device -> (eligible, reasons) once the policies decide (shared/core/policy_eligibility.py): a
# device failing any enforced policy is ineligible for the union of their reasons; the SAW
# fails none but CA13 cannot be decided, so the CA_POLICY setting decides (and says so).
ELIGIBILITY: dict[str, tuple[bool, tuple[str, ...]]] = {
    "hybrid-noncompliant": (False, ("NOT_COMPLIANT", "BLOCKED_BY_POLICY")),
    "entra-compliant": (False, ("BLOCKED_BY_POLICY",)),
    "entra-noncompliant": (False, ("NOT_COMPLIANT", "NOT_HYBRID_JOINED", "BLOCKED_BY_POLICY")),
    "iphone": (False, ("BLOCKED_BY_POLICY",)),
    "android-personal": (False, ("NOT_COMPLIANT", "NOT_JOINED", "BLOCKED_BY_POLICY")),
    "mac": (False, ("BLOCKED_BY_POLICY",)),
    "chromebook": (False, ("NOT_COMPLIANT", "NOT_JOINED", "BLOCKED_BY_POLICY")),
    "saw": (True, ()),
    "kiosk": (False, ("NOT_COMPLIANT", "NOT_HYBRID_JOINED", "BLOCKED_BY_POLICY")),
    "pending-hybrid": (False, ("HYBRID_JOIN_PENDING", "BLOCKED_BY_POLICY")),
    "disabled-saw": (False, ("DEVICE_DISABLED",)),
}
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_eligibility_of_every_device(name: str) -> None:
    policies = CompiledPolicySet(tuple(compile_policies(POLICIES)), NOW)
    snapshot = device_from_json(DEVICES[name])
    base = evaluate(snapshot, None, EvaluationOptions(), NOW)
    verdict = apply_policies(base, snapshot, DEVICES[name], policies)
    blocking, report_only, undecided = EXPECTED[name]
    assert (verdict.eligible, tuple(r.value for r in verdict.reasons)) == ELIGIBILITY[name]
    assert numbers(verdict.blocking_policies) == blocking
    assert numbers(verdict.report_only_failures) == report_only
    decided_by_setting = not blocking and bool(undecided - {4, 12})
    assert verdict.judged_by == ("ca_policy_setting" if decided_by_setting else "ca_policies")
    assert (Warning_.POLICY_NOT_UNDERSTOOD in verdict.warnings) is decided_by_setting
    # what devicemon does not judge travels with every blocking policy
    conditions = {
        ref.display_name: ref.conditional_on
        for ref in (*verdict.blocking_policies, *verdict.report_only_failures)
    }
    admins = {"CA06 Admins only from SAW", "CA08 Admins MFA and compliant"}
    assert all(conditions[n] == ("applications", "users") for n in admins & set(conditions))
    assert all(conditions[n] == ("users",) for n in set(conditions) - admins)
