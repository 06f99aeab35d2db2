"""Matching devices against filter-for-devices rules, as entra-docs
`concept-condition-filters-for-devices.md` documents it: the example column of its table, its
"Policy behavior with filter for devices" table (null = unregistered, extensionAttributes only on
Intune managed, compliant or hybrid joined devices), its note on Contains for strings versus
collections; and groups-dynamic-membership.md's "string operations aren't case sensitive".

Devices are in Graph's device JSON shape: microsoft-graph-docs-contrib `device-list.md` ("Get
devices with extensionAttributes") returns DESKTOP-LK3PESR with `"physicalIds": []` and
`"extensionAttributes": {"extensionAttribute1": "BYOD-Device", "extensionAttribute2": null, ...}`.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.device_filter import Comparison, Node, NotUnderstood, Operator, parse
from shared.core.device_filter_eval import Match, evaluate

INTUNE = "0000000a-0000-0000-c000-000000000000"  # Intune's mdmAppId (groups-dynamic-membership)
NO_EXTENSIONS = {f"extensionAttribute{n}": None for n in range(1, 16)}

# device-list.md's DESKTOP-LK3PESR, with the other properties the filter can read filled in
BYOD: dict[str, Any] = {
    "id": "0a1c6f4b-8f3e-4a8a-9d7f-5d8d3c0c7f11",
    "deviceId": "eab73519-780d-4d43-be6d-a4a89af2a348",
    "displayName": "DESKTOP-LK3PESR",
    "operatingSystem": "Windows",
    "operatingSystemVersion": "10.0.19043.1237",
    "physicalIds": [],
    "extensionAttributes": {**NO_EXTENSIONS, "extensionAttribute1": "BYOD-Device"},
    "accountEnabled": True,
    "isCompliant": False,
    "isManaged": False,
    "mdmAppId": None,
    "trustType": "Workplace",
    "profileType": "RegisteredDevice",
    "deviceOwnership": "Personal",
    "enrollmentProfileName": None,
    "manufacturer": None,
    "model": None,
    "systemLabels": [],
}

# A device holding every value of the filter page's example column (Graph spells ServerAd).
MATCHING: dict[str, Any] = {
    **BYOD,
    "deviceId": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb",
    "displayName": "ABC-SAW-01",
    "deviceOwnership": "Company",
    "enrollmentProfileName": "AutoPilot Profile - Tier 0",
    "isCompliant": True,
    "isManaged": True,
    "manufacturer": "Microsoft Corporation",
    "mdmAppId": "00001111-aaaa-2222-bbbb-3333cccc4444",
    "model": "Virtual Machine",
    "operatingSystemVersion": "10.0.19041",
    "physicalIds": ["[ZTDId]:value", "[HWID]:h:6966522099501206"],
    "profileType": "Printer",
    "systemLabels": ["M365Managed"],
    "trustType": "ServerAd",
    "extensionAttributes": {**NO_EXTENSIONS, "extensionAttribute1": "SAW"},
}
# One that differs in each of them, still Intune managed so its extension attributes count.
OTHER: dict[str, Any] = {
    **MATCHING,
    "deviceId": "bbbbbbbb-0000-1111-2222-bbbbbbbbbbbb",
    "displayName": "LAPTOP-0042",
    "deviceOwnership": "Personal",
    "enrollmentProfileName": "User driven",
    "isCompliant": False,
    "manufacturer": "Dell Inc.",
    "mdmAppId": INTUNE,
    "model": "Surface Laptop 5",
    "operatingSystem": "iOS",
    "operatingSystemVersion": "17.1",
    "physicalIds": ["[ZTDId]:other"],
    "profileType": "RegisteredDevice",
    "systemLabels": [],
    "trustType": "AzureAd",
    "extensionAttributes": {**NO_EXTENSIONS, "extensionAttribute1": "Kiosk"},
}

DOC_EXAMPLES = [
    '(device.deviceid -eq "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb")',
    '(device.displayName -contains "ABC")',
    '(device.deviceOwnership -eq "Company")',
    '(device.enrollmentProfileName -startsWith "AutoPilot Profile")',
    '(device.isCompliant -eq "True")',
    '(device.manufacturer -startsWith "Microsoft")',
    '(device.mdmAppId -in ["00001111-aaaa-2222-bbbb-3333cccc4444"])',
    '(device.model -notContains "Surface")',
    '(device.operatingSystem -eq "Windows")',
    '(device.operatingSystemVersion -in ["10.0.18363", "10.0.19041", "10.0.19042", "10.0.22000"])',
    '(device.physicalIds -contains "[ZTDId]:value")',
    '(device.profileType -eq "Printer")',
    '(device.systemLabels -contains "M365Managed")',
    '(device.trustType -eq "ServerAD")',
    '(device.extensionAttribute1 -eq "SAW")',
]


def tree(rule: str) -> Node:
    parsed = parse(rule)
    assert not isinstance(parsed, NotUnderstood), parsed
    return parsed


@pytest.mark.parametrize("rule", DOC_EXAMPLES)
def test_each_documented_example_tells_the_two_devices_apart(rule: str) -> None:
    assert evaluate(tree(rule), MATCHING) == Match(True)
    assert evaluate(tree(rule), OTHER) == Match(False)


def test_all_documented_examples_together() -> None:
    rule = tree(" -and ".join(DOC_EXAMPLES))
    assert evaluate(rule, MATCHING) == Match(True)
    assert evaluate(rule, OTHER) == Match(False)


# An unregistered device: "all device properties are considered as null values"; positive
# operators do not apply, negative ones do ("Policy behavior with filter for devices").
UNREGISTERED: dict[str, Any] = {
    key: None for key in [*MATCHING, "extensionAttributes"] if key != "id"
} | {"isManaged": None, "isCompliant": None, "trustType": None, "mdmAppId": None}


@pytest.mark.parametrize(
    ("rule", "matched"),
    [
        ('device.model -eq "Surface"', False),
        ('device.model -startsWith "S"', False),
        ('device.model -endsWith "e"', False),
        ('device.model -contains "u"', False),
        ('device.model -in ["Surface"]', False),
        ('device.model -ne "Surface"', True),
        ('device.model -notStartsWith "S"', True),
        ('device.model -notEndsWith "e"', True),
        ('device.model -notContains "u"', True),
        ('device.model -notIn ["Surface"]', True),
        ('device.physicalIds -contains "[ZTDId]:value"', False),
        ('device.physicalIds -notContains "[ZTDId]:value"', True),
        ('device.isCompliant -eq "True"', False),
        ('device.isCompliant -eq "False"', False),
        ('device.isCompliant -ne "True"', True),
        ('device.trustType -eq "ServerAD"', False),
        ('device.extensionAttribute1 -eq "SAW"', False),
        # the page's own PATCH example: exclude mode, so an unregistered device matches and is
        # left out of the policy
        ('device.extensionAttribute1 -ne "SAW"', True),
        ("device.model -eq null", True),
        ("device.model -ne null", False),
    ],
)
def test_an_unregistered_device_has_only_nulls(rule: str, matched: bool) -> None:
    assert evaluate(tree(rule), UNREGISTERED) == Match(matched)


SAW = {**NO_EXTENSIONS, "extensionAttribute1": "SAW"}


@pytest.mark.parametrize(
    ("device", "equals_saw"),
    [
        # registered device managed by Intune: criteria apply
        (
            {"isManaged": True, "mdmAppId": INTUNE, "isCompliant": False, "trustType": "AzureAd"},
            True,
        ),
        # not managed by Intune: the attributes count if compliant or hybrid joined
        ({"isManaged": False, "mdmAppId": None, "isCompliant": True, "trustType": "AzureAd"}, True),
        (
            {"isManaged": False, "mdmAppId": None, "isCompliant": False, "trustType": "ServerAd"},
            True,
        ),
        # neither: no value at evaluation, the attribute reads as null
        (
            {"isManaged": False, "mdmAppId": None, "isCompliant": False, "trustType": "AzureAd"},
            False,
        ),
        (
            {"isManaged": False, "mdmAppId": None, "isCompliant": None, "trustType": "Workplace"},
            False,
        ),
        # managed by another MDM is not "Microsoft Intune managed"
        (
            {
                "isManaged": True,
                "mdmAppId": "54b943f8-d761-4f8d-951e-9cea1846db5a",
                "isCompliant": False,
                "trustType": "AzureAd",
            },
            False,
        ),
    ],
)
def test_extension_attributes_count_only_when_the_docs_say_they_are_available(
    device: dict[str, Any], equals_saw: bool
) -> None:
    subject = {**device, "extensionAttributes": SAW}
    assert evaluate(tree('device.extensionAttribute1 -eq "SAW"'), subject) == Match(equals_saw)
    assert evaluate(tree('device.extensionAttribute1 -ne "SAW"'), subject) == Match(not equals_saw)


def test_extension_attribute_availability_that_cannot_be_told_is_unknown() -> None:
    device = {"isCompliant": False, "trustType": "AzureAd", "extensionAttributes": SAW}
    result = evaluate(tree('device.extensionAttribute1 -eq "SAW"'), device)
    assert result.matched is None
    assert "Intune managed, compliant or hybrid joined" in result.unknown[0]
    # but one documented condition is enough to know
    compliant = {**device, "isCompliant": True}
    assert evaluate(tree('device.extensionAttribute1 -eq "SAW"'), compliant) == Match(True)


def test_contains_is_a_substring_for_strings_and_a_whole_item_for_collections() -> None:
    # the filter page's note on Contains and NotContains
    assert evaluate(tree('device.model -contains "Lap"'), OTHER) == Match(True)
    assert evaluate(tree('device.physicalIds -contains "[ZTDId]"'), OTHER) == Match(False)
    assert evaluate(tree('device.physicalIds -contains "[ZTDId]:other"'), OTHER) == Match(True)
    assert evaluate(tree('device.physicalIds -notContains "[ZTDId]"'), OTHER) == Match(True)
    assert evaluate(tree('device.systemLabels -contains "M365"'), MATCHING) == Match(False)


@pytest.mark.parametrize(
    "rule",
    [
        'device.operatingSystem -eq "WINDOWS"',
        'device.trustType -eq "serverad"',
        'device.displayName -startsWith "abc-saw"',
        'device.displayName -endsWith "-01"',
        'device.model -contains "MACHINE"',
        'device.operatingSystemVersion -in ["10.0.19041"]',
        'device.systemLabels -contains "m365managed"',
        'device.physicalIds -contains "[ztdid]:VALUE"',
        'device.deviceId -eq "AAAAAAAA-0000-1111-2222-BBBBBBBBBBBB"',
        'device.extensionAttribute1 -eq "saw"',
        'device.isCompliant -eq "true"',
    ],
)
def test_string_operations_are_not_case_sensitive(rule: str) -> None:
    assert evaluate(tree(rule), MATCHING) == Match(True)


def test_null_checks() -> None:
    assert evaluate(tree("device.enrollmentProfileName -eq null"), BYOD) == Match(True)
    assert evaluate(tree("device.enrollmentProfileName -ne null"), BYOD) == Match(False)
    assert evaluate(tree("device.extensionAttribute1 -ne null"), OTHER) == Match(True)
    assert evaluate(tree("device.extensionAttribute2 -eq null"), OTHER) == Match(True)


def test_a_property_that_was_not_read_cannot_be_decided() -> None:
    device = {key: value for key, value in MATCHING.items() if key != "model"}
    assert evaluate(tree('device.model -eq "x"'), device) == Match(
        None, ("device.model was not read",)
    )
    assert evaluate(tree('-not device.model -eq "x"'), device).matched is None
    without = {key: value for key, value in MATCHING.items() if key != "extensionAttributes"}
    assert evaluate(tree('device.extensionAttribute9 -eq "x"'), without).unknown == (
        "device.extensionAttributes was not read",
    )
    partial = {**MATCHING, "extensionAttributes": {"extensionAttribute1": "SAW"}}
    assert evaluate(tree('device.extensionAttribute9 -eq "x"'), partial).unknown == (
        "device.extensionAttributes.extensionAttribute9 was not read",
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # three-valued logic: an unknown only matters when the answer depends on it
        ('device.model -eq "x" -or device.operatingSystem -eq "Windows"', True),
        ('device.model -eq "x" -and device.operatingSystem -eq "iOS"', False),
        ('device.model -eq "x" -or device.operatingSystem -eq "iOS"', None),
        ('device.model -eq "x" -and device.operatingSystem -eq "Windows"', None),
        ('-not (device.model -eq "x" -and device.operatingSystem -eq "iOS")', True),
    ],
)
def test_unknowns_combine_in_three_valued_logic(rule: str, expected: bool | None) -> None:
    device = {key: value for key, value in MATCHING.items() if key != "model"}
    result = evaluate(tree(rule), device)
    assert result.matched is expected
    assert bool(result.unknown) is (expected is None)


@pytest.mark.parametrize(
    ("rule", "device", "complaint"),
    [
        ('device.model -eq "x"', {"model": 7}, "is not a string"),
        ('device.physicalIds -contains "x"', {"physicalIds": "x"}, "is not a list of strings"),
        ('device.physicalIds -contains "x"', {"physicalIds": [1]}, "is not a list of strings"),
        ('device.isCompliant -eq "True"', {"isCompliant": "yes"}, "is not true, false or null"),
        ('device.extensionAttribute1 -eq "x"', {"extensionAttributes": []}, "is not an object"),
    ],
)
def test_a_value_of_the_wrong_type_is_not_guessed(
    rule: str, device: dict[str, Any], complaint: str
) -> None:
    subject = {**MATCHING, **device}
    result = evaluate(tree(rule), subject)
    assert result.matched is None
    assert complaint in result.unknown[0]


def test_null_extension_attributes_object_reads_as_nulls() -> None:
    device = {**MATCHING, "extensionAttributes": None}
    assert evaluate(tree('device.extensionAttribute1 -ne "SAW"'), device) == Match(True)


def test_a_hand_built_tree_evaluates_like_a_parsed_one() -> None:
    built = Comparison("operatingSystemVersion", Operator.NOT_IN, ("10.0.19041", "10.0.22000"))
    assert evaluate(built, MATCHING) == Match(False)
    assert evaluate(built, OTHER) == Match(True)
