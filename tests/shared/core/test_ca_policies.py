"""Compiling Graph's conditionalAccessPolicy JSON into devicemon's device view.

Payloads are Microsoft's own: the responses of microsoft-graph-docs-contrib
`api-reference/v1.0/api/conditionalaccessroot-post-policies.md` (examples 1-4, quoted below as
the docs print them) and the filter-for-devices PATCH body of entra-docs
`concept-condition-filters-for-devices.md`; field meanings from `conditionalaccesspolicy.md`,
`conditionalaccessgrantcontrols.md`, `conditionalaccessconditionset.md`,
`conditionalaccessplatforms.md`, `conditionalaccessdevices.md`, `conditionalaccessfilter.md`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.core.ca_policies import (
    CompiledPolicy,
    DeviceControl,
    FilterMode,
    PolicyState,
    Requirement,
    compile_policies,
    compile_policy,
    describe,
)
from shared.core.device_filter import Comparison, NotUnderstood, Operator

# Example 1 response: "Require MFA to access Exchange Online outside of trusted locations"
EXAMPLE_1 = json.loads("""{
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#conditionalAccess/policies/$entity",
    "id": "7359d0e0-d8a9-4afa-8a93-e23e099d7be8",
    "displayName": "Access to EXO requires MFA",
    "createdDateTime": "2019-10-14T19:52:00.050958Z",
    "modifiedDateTime": null,
    "state": "enabled",
    "sessionControls": null,
    "conditions": {
        "signInRiskLevels": [],
        "clientAppTypes": ["mobileAppsAndDesktopClients", "browser"],
        "platforms": null,
        "applications": {
            "includeApplications": ["00000002-0000-0ff1-ce00-000000000000"],
            "excludeApplications": [],
            "includeUserActions": []
        },
        "users": {
            "includeUsers": [], "excludeUsers": [],
            "includeGroups": ["ba8e7ded-8b0f-4836-ba06-8ff1ecc5c8ba"], "excludeGroups": [],
            "includeRoles": [], "excludeRoles": []
        },
        "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}
    },
    "grantControls": {
        "operator": "OR", "builtInControls": ["mfa"],
        "customAuthenticationFactors": [], "termsOfUse": []
    }
}""")

# Example 2 response: "Block access to Exchange Online from non-trusted regions"
EXAMPLE_2 = json.loads("""{
    "id": "c98e6c3d-f6ca-42ea-a927-773b6f12a0c2",
    "displayName": "Block access to EXO non-trusted regions.",
    "createdDateTime": "2019-10-14T19:53:11.3705634Z",
    "modifiedDateTime": null,
    "state": "enabled",
    "sessionControls": null,
    "conditions": {
        "signInRiskLevels": [],
        "clientAppTypes": ["all"],
        "platforms": null,
        "applications": {
            "includeApplications": ["00000002-0000-0ff1-ce00-000000000000"],
            "excludeApplications": [], "includeUserActions": []
        },
        "users": {
            "includeUsers": [], "excludeUsers": [],
            "includeGroups": ["ba8e7ded-8b0f-4836-ba06-8ff1ecc5c8ba"], "excludeGroups": [],
            "includeRoles": [], "excludeRoles": []
        },
        "locations": {
            "includeLocations": ["198ad66e-87b3-4157-85a3-8a7b51794ee9"], "excludeLocations": []
        }
    },
    "grantControls": {
        "operator": "OR", "builtInControls": ["block"],
        "customAuthenticationFactors": [], "termsOfUse": []
    }
}""")

# Example 3 response: "Use all conditions and controls"
EXAMPLE_3 = json.loads("""{
    "id": "6b5e999b-0ba8-4186-a106-e0296c1c4358",
    "displayName": "Demo app for documentation",
    "createdDateTime": "2019-09-26T23:12:16.0792706Z",
    "modifiedDateTime": null,
    "state": "disabled",
    "conditions": {
        "signInRiskLevels": ["high", "medium"],
        "clientAppTypes": ["mobileAppsAndDesktopClients", "exchangeActiveSync", "other"],
        "applications": {
            "includeApplications": ["All"],
            "excludeApplications": [
                "499b84ac-1321-427f-aa17-267ca6975798", "00000007-0000-0000-c000-000000000000",
                "de8bc8b5-d9f9-48b1-a8ad-b748da725064", "00000012-0000-0000-c000-000000000000",
                "797f4846-ba00-4fd7-ba43-dac1f8f63013", "05a65629-4c1b-48c1-a78b-804c4abdd4af",
                "7df0a125-d3be-4c96-aa54-591f83ff541c"
            ],
            "includeUserActions": []
        },
        "users": {
            "includeUsers": ["a702a13d-a437-4a07-8a7e-8c052de62dfd"],
            "excludeUsers": ["124c5b6a-ffa5-483a-9b88-04c3fce5574a", "GuestsOrExternalUsers"],
            "includeGroups": [], "excludeGroups": [],
            "includeRoles": [
                "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "cf1c38e5-3621-4004-a7cb-879624dced7c",
                "c4e39bd9-1100-46d3-8c65-fb160da0071f"
            ],
            "excludeRoles": ["b0f54661-2d74-4c50-afa3-1ec803f12efe"]
        },
        "platforms": {"includePlatforms": ["all"], "excludePlatforms": ["iOS", "windowsPhone"]},
        "locations": {
            "includeLocations": ["AllTrusted"],
            "excludeLocations": [
                "00000000-0000-0000-0000-000000000000", "d2136c9c-b049-47ae-b9cf-316e04ef7198"
            ]
        }
    },
    "grantControls": {
        "operator": "OR",
        "builtInControls": [
            "mfa", "compliantDevice", "domainJoinedDevice", "approvedApplication",
            "compliantApplication"
        ],
        "customAuthenticationFactors": [],
        "termsOfUse": ["ce580154-086a-40fd-91df-8a60abac81a0", "7f29d675-caff-43e1-8a53-1b8516ed2075"]
    },
    "sessionControls": {
        "applicationEnforcedRestrictions": null,
        "persistentBrowser": null,
        "cloudAppSecurity": {"cloudAppSecurityType": "blockDownloads", "isEnabled": true},
        "signInFrequency": {"value": 4, "type": "hours", "isEnabled": true}
    }
}""")

# Example 4 response: "Require MFA to Exchange Online from non-compliant devices"
EXAMPLE_4 = json.loads("""{
    "id": "b3f1298e-8e93-49af-bdbf-94cf7d453ca3",
    "displayName": "Require MFA to EXO from non-compliant devices.",
    "createdDateTime": "2020-04-01T00:55:12.9571747Z",
    "modifiedDateTime": null,
    "state": "enabled",
    "sessionControls": null,
    "conditions": {
        "userRiskLevels": [], "signInRiskLevels": [], "clientAppTypes": ["all"],
        "platforms": null, "locations": null, "times": null,
        "applications": {
            "includeApplications": ["00000002-0000-0ff1-ce00-000000000000"],
            "excludeApplications": [], "includeUserActions": [], "includeProtectionLevels": []
        },
        "users": {
            "includeUsers": [], "excludeUsers": [],
            "includeGroups": ["ba8e7ded-8b0f-4836-ba06-8ff1ecc5c8ba"], "excludeGroups": [],
            "includeRoles": [], "excludeRoles": []
        }
    },
    "grantControls": {
        "operator": "OR", "builtInControls": ["mfa"],
        "customAuthenticationFactors": [], "termsOfUse": []
    }
}""")

# concept-condition-filters-for-devices.md, "Filter for devices Graph API": the PATCH body
SAW_FILTER = {
    "conditions": {
        "devices": {
            "deviceFilter": {"mode": "exclude", "rule": 'device.extensionAttribute1 -ne "SAW"'}
        }
    }
}


def test_example_1_asks_nothing_of_devices() -> None:
    policy = compile_policy(EXAMPLE_1)
    assert (policy.id, policy.display_name) == (
        "7359d0e0-d8a9-4afa-8a93-e23e099d7be8",
        "Access to EXO requires MFA",
    )
    assert policy.state is PolicyState.ENABLED
    assert policy.requirement is Requirement.NONE
    assert policy.other_controls == ("mfa",)
    assert (policy.include_platforms, policy.device_filter) == ((), None)
    assert set(policy.unjudged_conditions) == {
        "clientAppTypes",
        "applications",
        "users",
        "locations",
    }
    assert policy.problems == ()


def test_example_2_is_a_block_that_no_device_condition_scopes() -> None:
    policy = compile_policy(EXAMPLE_2)
    assert policy.requirement is Requirement.BLOCK
    assert not policy.device_scoped
    assert "clientAppTypes" not in policy.unjudged_conditions  # ["all"] narrows nothing


def test_example_3_offers_device_controls_among_alternatives() -> None:
    policy = compile_policy(EXAMPLE_3)
    assert policy.state is PolicyState.DISABLED
    # OR with mfa, app controls and terms of use: the device controls are not a requirement
    assert policy.requirement is Requirement.ALTERNATIVE
    assert policy.device_controls == (DeviceControl.COMPLIANT, DeviceControl.HYBRID)
    assert policy.other_controls == (
        "mfa",
        "approvedApplication",
        "compliantApplication",
        "termsOfUse",
    )
    assert policy.include_platforms == ("all",)
    assert policy.exclude_platforms == ("iOS", "windowsPhone")
    assert policy.device_scoped
    assert set(policy.unjudged_conditions) == {
        "signInRiskLevels",
        "clientAppTypes",
        "applications",
        "users",
        "locations",
    }


def test_example_4_despite_its_name_requires_only_mfa() -> None:
    policy = compile_policy(EXAMPLE_4)
    assert policy.requirement is Requirement.NONE
    assert "times" not in policy.unjudged_conditions  # null


def test_the_filter_pages_patch_body_compiles_to_an_exclude_filter() -> None:
    policy = compile_policy(
        {
            "id": "p2",
            "displayName": "Policy 2",
            "state": "enabled",
            **SAW_FILTER,
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        }
    )
    assert policy.device_filter is not None
    assert policy.device_filter.mode is FilterMode.EXCLUDE
    assert policy.device_filter.parsed == Comparison(
        "extensionAttribute1", Operator.NOT_EQUALS, "SAW"
    )
    assert policy.requirement is Requirement.BLOCK and policy.device_scoped


def grant(controls: list[str], operator: str | None = "OR", **extra: Any) -> CompiledPolicy:
    body: dict[str, Any] = {"builtInControls": controls, **extra}
    if operator is not None:
        body["operator"] = operator
    return compile_policy(
        {"id": "x", "displayName": "x", "state": "enabled", "conditions": {}, "grantControls": body}
    )


@pytest.mark.parametrize(
    ("controls", "operator", "requirement", "device"),
    [
        # "Require one of the selected controls" between the two device controls
        (
            ["compliantDevice", "domainJoinedDevice"],
            "OR",
            Requirement.ANY,
            ("compliantDevice", "domainJoinedDevice"),
        ),
        # "Require all the selected controls"
        (
            ["compliantDevice", "domainJoinedDevice"],
            "AND",
            Requirement.ALL,
            ("compliantDevice", "domainJoinedDevice"),
        ),
        (["compliantDevice"], "OR", Requirement.ANY, ("compliantDevice",)),
        (["domainJoinedDevice"], "AND", Requirement.ALL, ("domainJoinedDevice",)),
        # MFA AND compliant: the device must still be compliant
        (["mfa", "compliantDevice"], "AND", Requirement.ALL, ("compliantDevice",)),
        # MFA OR compliant: a device control offered as an alternative to MFA
        (["mfa", "compliantDevice"], "OR", Requirement.ALTERNATIVE, ("compliantDevice",)),
        (
            ["compliantApplication", "compliantDevice"],
            "OR",
            Requirement.ALTERNATIVE,
            ("compliantDevice",),
        ),
        (["approvedApplication", "compliantApplication"], "OR", Requirement.NONE, ()),
        (["mfa", "passwordChange"], "AND", Requirement.NONE, ()),
        (["block"], "OR", Requirement.BLOCK, ()),
        (["block"], "AND", Requirement.BLOCK, ()),
        ([], "OR", Requirement.NONE, ()),
        # "By default, Conditional Access requires all selected controls"
        (["mfa", "compliantDevice"], None, Requirement.ALL, ("compliantDevice",)),
        # with one control the operator has nothing to combine
        (["compliantDevice"], "nonsense", Requirement.ALL, ("compliantDevice",)),
        (
            ["compliantDevice", "domainJoinedDevice"],
            "or",
            Requirement.ANY,
            ("compliantDevice", "domainJoinedDevice"),
        ),
        # unknownFutureValue: a control devicemon cannot see
        (["compliantDevice", "unknownFutureValue"], "AND", Requirement.ALL, ("compliantDevice",)),
        (["compliantDevice", "unknownFutureValue"], "OR", Requirement.ANY, ("compliantDevice",)),
        (["mfa", "unknownFutureValue"], "OR", Requirement.NONE, ()),
        (["unknownFutureValue"], "OR", Requirement.NOT_UNDERSTOOD, ()),
        (["mfa", "unknownFutureValue"], "AND", Requirement.NOT_UNDERSTOOD, ()),
        (["block", "mfa"], "OR", Requirement.NOT_UNDERSTOOD, ()),
        (["compliantDevice", "mfa"], "XOR", Requirement.NOT_UNDERSTOOD, ("compliantDevice",)),
    ],
)
def test_grant_controls(
    controls: list[str], operator: str | None, requirement: Requirement, device: tuple[str, ...]
) -> None:
    policy = grant(controls, operator)
    assert policy.requirement is requirement
    assert tuple(c.value for c in policy.device_controls) == device
    assert (policy.requirement is Requirement.NOT_UNDERSTOOD) == bool(policy.problems)


@pytest.mark.parametrize(
    "extra",
    [
        {"termsOfUse": ["ce580154-086a-40fd-91df-8a60abac81a0"]},
        {"customAuthenticationFactors": ["Duo"]},
        {"authenticationStrength": {"id": "00000000-0000-0000-0000-000000000002"}},
    ],
)
def test_other_grant_properties_are_alternatives_under_or(extra: dict[str, Any]) -> None:
    assert grant(["compliantDevice"], "OR", **extra).requirement is Requirement.ALTERNATIVE
    assert grant(["compliantDevice"], "AND", **extra).requirement is Requirement.ALL
    assert grant(["block"], "OR", **extra).requirement is Requirement.NOT_UNDERSTOOD


def test_session_controls_only() -> None:
    policy = compile_policy(
        {"id": "s", "state": "enabled", "conditions": {}, "grantControls": None}
    )
    assert policy.requirement is Requirement.NONE


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ({"state": "enabledButMaybe"}, "not a documented policy state"),
        ({"conditions": None}, "no conditions object"),
        ({"grantControls": ["mfa"]}, "grantControls is not an object"),
        ({"grantControls": {"builtInControls": "mfa"}}, "builtInControls is not a list"),
        ({"conditions": {"platforms": ["windows"]}}, "platforms is not an object"),
        (
            {"conditions": {"platforms": {"includePlatforms": [], "excludePlatforms": ["iOS"]}}},
            "excludePlatforms without includePlatforms",
        ),
        ({"conditions": {"devices": "x"}}, "devices is not an object"),
        ({"conditions": {"devices": {"deviceFilter": {"mode": "include"}}}}, "has no rule"),
        (
            {
                "conditions": {
                    "devices": {"deviceFilter": {"mode": "only", "rule": 'device.model -eq "x"'}}
                }
            },
            "neither include nor exclude",
        ),
        (
            {
                "conditions": {
                    "devices": {
                        "includeDeviceStates": ["All"],
                        "excludeDeviceStates": ["Compliant"],
                    }
                }
            },
            "deprecated device state condition",
        ),
    ],
)
def test_what_the_docs_do_not_define_is_a_named_problem(
    policy: dict[str, Any], problem: str
) -> None:
    body: dict[str, Any] = {"id": "p", "displayName": "p", "state": "enabled", "conditions": {}}
    compiled = compile_policy({**body, **policy})
    assert any(problem in text for text in compiled.problems), compiled.problems


def test_empty_device_state_lists_are_no_problem() -> None:
    # what Graph returns for a policy that never used the old condition
    devices: dict[str, Any] = {"includeDevices": [], "excludeDevices": [], "deviceFilter": None}
    compiled = compile_policy({"id": "p", "state": "enabled", "conditions": {"devices": devices}})
    assert (compiled.problems, compiled.device_filter) == ((), None)


def test_a_filter_rule_not_understood_is_kept_with_its_reason() -> None:
    rule = 'device.displayName -match "^LAB"'
    compiled = compile_policy(
        {
            "id": "p",
            "state": "enabled",
            "conditions": {"devices": {"deviceFilter": {"mode": "include", "rule": rule}}},
        }
    )
    assert compiled.device_filter is not None
    assert isinstance(compiled.device_filter.parsed, NotUnderstood)
    assert describe(compiled)["deviceFilter"] == {
        "mode": "include",
        "rule": rule,
        "notUnderstood": "not understood at character 20: -match is not an operator of device filters",
    }


def test_unknown_platform_values_are_kept_as_graph_sent_them() -> None:
    compiled = compile_policy(
        {
            "id": "p",
            "state": "enabledForReportingButNotEnforced",
            "conditions": {
                "platforms": {
                    "includePlatforms": ["unknownFutureValue", "linux"],
                    "excludePlatforms": [],
                }
            },
        }
    )
    assert compiled.state is PolicyState.REPORT_ONLY
    assert compiled.include_platforms == ("unknownFutureValue", "linux")
    assert compiled.device_scoped


def test_a_listing_page_and_a_plain_export_compile_alike() -> None:
    page = {"@odata.context": "...", "value": [EXAMPLE_1, EXAMPLE_2, EXAMPLE_3, EXAMPLE_4]}
    assert compile_policies(page) == compile_policies([EXAMPLE_1, EXAMPLE_2, EXAMPLE_3, EXAMPLE_4])
    assert [p.id for p in compile_policies(page)] == [
        "7359d0e0-d8a9-4afa-8a93-e23e099d7be8",
        "c98e6c3d-f6ca-42ea-a927-773b6f12a0c2",
        "6b5e999b-0ba8-4186-a106-e0296c1c4358",
        "b3f1298e-8e93-49af-bdbf-94cf7d453ca3",
    ]


def test_describe_is_plain_json() -> None:
    described = describe(compile_policy(EXAMPLE_3))
    assert json.loads(json.dumps(described)) == described
    assert described["requirement"] == "alternative"
    assert described["deviceControls"] == ["compliantDevice", "domainJoinedDevice"]
    assert described["excludePlatforms"] == ["iOS", "windowsPhone"]
    assert described["deviceFilter"] is None
