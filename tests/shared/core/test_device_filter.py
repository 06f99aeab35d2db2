"""Parsing and printing filter-for-devices rules, table-driven from the documents' own examples.

Every rule in the "Example" column of entra-docs `concept-condition-filters-for-devices.md`, the
page's Graph PATCH body and its scenario prose; the device examples and syntax rules of
entra-docs `groups-dynamic-membership.md`, which the filter page names as its syntax reference
(user-rule syntax examples appear with the user property swapped for a device one, as noted)."""

from __future__ import annotations

import pytest

from shared.core.device_filter import (
    MAX_RULE_LENGTH,
    And,
    Comparison,
    Node,
    Not,
    NotUnderstood,
    Operator,
    Or,
    comparisons,
    parse,
    to_text,
)

C, Op = Comparison, Operator


def read(rule: str) -> Node:
    parsed = parse(rule)
    assert not isinstance(parsed, NotUnderstood), parsed
    return parsed


# (rule as the docs write it, the tree devicemon reads)
UNDERSTOOD: list[tuple[str, Node]] = [
    # concept-condition-filters-for-devices.md, "Supported operators and device properties"
    (
        '(device.deviceid -eq "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb")',
        C("deviceId", Op.EQUALS, "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"),
    ),
    ('(device.displayName -contains "ABC")', C("displayName", Op.CONTAINS, "ABC")),
    ('(device.deviceOwnership -eq "Company")', C("deviceOwnership", Op.EQUALS, "Company")),
    (
        '(device.enrollmentProfileName -startsWith "AutoPilot Profile")',
        C("enrollmentProfileName", Op.STARTS_WITH, "AutoPilot Profile"),
    ),
    ('(device.isCompliant -eq "True")', C("isCompliant", Op.EQUALS, True)),
    (
        '(device.manufacturer -startsWith "Microsoft")',
        C("manufacturer", Op.STARTS_WITH, "Microsoft"),
    ),
    (
        '(device.mdmAppId -in ["00001111-aaaa-2222-bbbb-3333cccc4444"])',
        C("mdmAppId", Op.IN, ("00001111-aaaa-2222-bbbb-3333cccc4444",)),
    ),
    ('(device.model -notContains "Surface")', C("model", Op.NOT_CONTAINS, "Surface")),
    ('(device.operatingSystem -eq "Windows")', C("operatingSystem", Op.EQUALS, "Windows")),
    (
        '(device.operatingSystemVersion -in ["10.0.18363", "10.0.19041", "10.0.19042", "10.0.22000"])',
        C(
            "operatingSystemVersion",
            Op.IN,
            ("10.0.18363", "10.0.19041", "10.0.19042", "10.0.22000"),
        ),
    ),
    (
        '(device.physicalIds -contains "[ZTDId]:value")',
        C("physicalIds", Op.CONTAINS, "[ZTDId]:value"),
    ),
    ('(device.profileType -eq "Printer")', C("profileType", Op.EQUALS, "Printer")),
    (
        '(device.systemLabels -contains "M365Managed")',
        C("systemLabels", Op.CONTAINS, "M365Managed"),
    ),
    ('(device.trustType -eq "ServerAD")', C("trustType", Op.EQUALS, "ServerAD")),
    ('(device.extensionAttribute1 -eq "SAW")', C("extensionAttribute1", Op.EQUALS, "SAW")),
    # the page's Graph PATCH body: "rule": "device.extensionAttribute1 -ne \"SAW\""
    ('device.extensionAttribute1 -ne "SAW"', C("extensionAttribute1", Op.NOT_EQUALS, "SAW")),
    # scenario 2's second half: no hyphen ("Operators can be used with or without the hyphen")
    # and a single-quoted string (the docs' '' escape implies single-quoted strings)
    (
        "device.operatingSystemVersion startsWith '10.0'",
        C("operatingSystemVersion", Op.STARTS_WITH, "10.0"),
    ),
    # groups-dynamic-membership.md, "Rules for devices": the properties the filter also supports
    ('device.deviceOwnership -eq "Company"', C("deviceOwnership", Op.EQUALS, "Company")),
    ('device.displayName -eq "Rob iPhone"', C("displayName", Op.EQUALS, "Rob iPhone")),
    (
        'device.deviceId -eq "d4fe7726-5966-431c-b3b8-cddc8fdb717d"',
        C("deviceId", Op.EQUALS, "d4fe7726-5966-431c-b3b8-cddc8fdb717d"),
    ),
    (
        'device.enrollmentProfileName -eq "DEP iPhones"',
        C("enrollmentProfileName", Op.EQUALS, "DEP iPhones"),
    ),
    (
        'device.extensionAttribute15 -eq "some string value"',
        C("extensionAttribute15", Op.EQUALS, "some string value"),
    ),
    ('device.profileType -eq "RegisteredDevice"', C("profileType", Op.EQUALS, "RegisteredDevice")),
    # "Use of Null values": user.mail -ne null, on a device property
    ("device.extensionAttribute3 -ne null", C("extensionAttribute3", Op.NOT_EQUALS, None)),
    ("device.extensionAttribute3 -eq NULL", C("extensionAttribute3", Op.EQUALS, None)),
    # "Operators": -EndsWith is listed with a capital; user.otherMails -endsWith"@contoso.com"
    # is written with no space before the value
    ('device.displayName -EndsWith "-kiosk"', C("displayName", Op.ENDS_WITH, "-kiosk")),
    ('device.displayName -endsWith"@contoso.com"', C("displayName", Op.ENDS_WITH, "@contoso.com")),
    # escapes: `" is a double quote inside a value, '' a single quote
    ('device.model -eq "`"Sales`""', C("model", Op.EQUALS, '"Sales"')),
    ("device.displayName -eq 'Rob''s iPhone'", C("displayName", Op.EQUALS, "Rob's iPhone")),
    ("device.displayName -eq \"Rob''s iPhone\"", C("displayName", Op.EQUALS, "Rob's iPhone")),
    # isCompliant as a bare boolean ("Boolean - true, false" under "Supported values")
    ("device.isCompliant -eq false", C("isCompliant", Op.EQUALS, False)),
    ('device.isCompliant -ne "false"', C("isCompliant", Op.NOT_EQUALS, False)),
    # "Rules with multiple expressions", with device properties in place of user.department
    (
        '(device.model -eq "Sales") -or (device.model -eq "Marketing")',
        Or((C("model", Op.EQUALS, "Sales"), C("model", Op.EQUALS, "Marketing"))),
    ),
    (
        '(device.model -eq "Sales") -and -not (device.displayName -startsWith "SDE")',
        And((C("model", Op.EQUALS, "Sales"), Not(C("displayName", Op.STARTS_WITH, "SDE")))),
    ),
    # "Operator precedence": -and binds tighter than -or; parentheses change the order
    (
        'device.model -eq "US" -and device.manufacturer -eq "Marketing" -or device.model -eq "X"',
        Or(
            (
                And((C("model", Op.EQUALS, "US"), C("manufacturer", Op.EQUALS, "Marketing"))),
                C("model", Op.EQUALS, "X"),
            )
        ),
    ),
    (
        'device.model -eq "US" -and (device.manufacturer -eq "M" -or device.manufacturer -eq "S")',
        And(
            (
                C("model", Op.EQUALS, "US"),
                Or((C("manufacturer", Op.EQUALS, "M"), C("manufacturer", Op.EQUALS, "S"))),
            )
        ),
    ),
    # -not binds tighter than -and, looser than a comparison
    (
        '-not device.model -eq "A" -and device.model -eq "B"',
        And((Not(C("model", Op.EQUALS, "A")), C("model", Op.EQUALS, "B"))),
    ),
    # the "Back to school" pattern the filter page links: exclude what is neither of two values
    (
        'device.extensionAttribute1 -ne "SAW" -and device.extensionAttribute1 -ne "PAW"',
        And(
            (
                C("extensionAttribute1", Op.NOT_EQUALS, "SAW"),
                C("extensionAttribute1", Op.NOT_EQUALS, "PAW"),
            )
        ),
    ),
]


@pytest.mark.parametrize(("rule", "tree"), UNDERSTOOD)
def test_documented_rules_are_understood(rule: str, tree: Node) -> None:
    assert parse(rule) == tree


@pytest.mark.parametrize(("rule", "tree"), UNDERSTOOD)
def test_printing_gives_a_rule_that_parses_to_the_same_tree(rule: str, tree: Node) -> None:
    printed = to_text(tree)
    assert parse(printed) == tree
    assert to_text(read(printed)) == printed


# (rule, offset of the refused token, a phrase of the reason)
NOT_UNDERSTOOD: list[tuple[str, int, str]] = [
    # concept-condition-filters-for-devices.md scenario 2, written as prose
    ("device.operatingSystem == 'Windows'", 23, "expected an operator"),
    # its scenario prose, not rule syntax
    ("device.extensionAttribute2 not equals TeamsPhoneDevice", 27, "not is not an operator"),
    # groups-dynamic-membership.md device properties the filter page does not list
    ('device.deviceOSType -eq "iPad"', 0, "not a property the filter for devices supports"),
    ('device.deviceTrustType -eq "AzureAD"', 0, "not a property"),
    ("device.accountEnabled -eq true", 0, "not a property"),
    ("device.objectId -ne null", 0, "not a property"),
    ('device.deviceManagementAppId -eq "0000000a-0000-0000-c000-000000000000"', 0, "not a prop"),
    ('device.organizationalUnit -eq "x"', 0, "not a property"),
    # its multi-value syntax: physicalIds takes Contains/NotContains only
    ('device.physicalIds -any _ -startsWith "[ZTDId]"', 19, "-any is not an operator"),
    ('device.systemLabels -startsWith "M365Managed"', 20, "-startsWith is not supported for"),
    # operators of dynamic groups that the filter page does not list
    ('device.displayName -match "^Da.*"', 19, "-match is not an operator"),
    ('device.displayName -notMatch ".*vid"', 19, "-notMatch is not an operator"),
    # operators a property does not take (filter page table)
    ('device.deviceId -startsWith "aaaa"', 16, "not supported for deviceId"),
    ('device.trustType -in ["AzureAD"]', 17, "not supported for trustType"),
    ('device.isCompliant -contains "True"', 19, "not supported for isCompliant"),
    ('device.physicalIds -eq "[ZTDId]:value"', 19, "not supported for physicalIds"),
    # the user-rule examples themselves: a device filter reads only device properties
    ('(user.department -eq "Sales") -or (user.department -eq "Marketing")', 1, "device.<prop"),
    # the precedence example, typeset with en dashes
    ('device.model \u2013eq "US" \u2013and device.model \u2013eq "X"', 13, "typographic dash"),
    # values outside the documented closed sets or shapes
    ('device.trustType -eq "Hybrid"', 21, "AzureAD, ServerAD, Workplace"),
    ('device.deviceOwnership -eq "Unknown"', 27, "Personal, Company"),
    ('device.profileType -eq "Kiosk"', 23, "RegisteredDevice"),
    ('device.isCompliant -eq "yes"', 23, "True, False"),
    ('device.deviceId -eq "not-a-guid"', 20, "takes a GUID"),
    ('device.mdmAppId -in ["0000000a-0000-0000-c000-000000000000", "x"]', 61, "takes a GUID"),
    ("device.model -eq true", 17, "not a boolean property"),
    # null: "Use -eq or -ne when comparing the null value"
    ("device.model -startsWith null", 25, "null can only be compared with -eq or -ne"),
    # unquoted strings, lists in the wrong place, broken lists
    ("device.operatingSystemVersion -eq 10.0", 34, "expected a quoted value"),
    ("device.model -eq Surface", 17, "expected a quoted value"),
    ('device.model -in "Surface"', 17, "takes a [list]"),
    ('device.model -eq ["Surface"]', 17, "goes only with -in"),
    ("device.model -in []", 18, "expected a quoted string in the list"),
    ('device.model -in ["a",]', 22, "expected a quoted string in the list"),
    ('device.model -in ["a" "b"]', 22, "expected ',' or ']'"),
    # escapes the docs do not give
    ('device.model -eq `"Sales`"', 17, "backtick outside a string"),
    ('device.model -eq "a`b"', 19, "escapes only a double quote"),
    ('device.model -eq "Rob\'s"', 21, "lone '"),
    ("device.model -eq 'say \"hi\"'", 22, 'lone "'),
    ('device.model -eq "open', 17, "never closed"),
    # structure
    ('(device.model -eq "a"', 21, "expected ')'"),
    ('device.model -eq "a")', 20, "expected -and, -or or the end"),
    ('device.model -eq "a" and device.model -eq "b"', 21, "expected -and, -or or the end"),
    ('device.model -eq "a" -and', 25, "expected device.<property>"),
    ("-not", 4, "expected device.<property>"),
    ("device.model", 12, "expected an operator"),
    ('device.model -not "a"', 13, "-not is not an operator"),
    ("   ", 0, "empty"),
]


@pytest.mark.parametrize(("rule", "position", "reason"), NOT_UNDERSTOOD)
def test_what_the_docs_do_not_define_is_not_understood(
    rule: str, position: int, reason: str
) -> None:
    result = parse(rule)
    assert isinstance(result, NotUnderstood)
    assert (result.position, result.rule) == (position, rule)
    assert reason in result.reason
    assert str(result).startswith(f"not understood at character {position + 1}: ")


def test_the_documented_length_limit() -> None:
    # "The maximum length for the filter rule is 3072 characters"
    ids = [f"{n:08x}-0000-1111-2222-bbbbbbbbbbbb" for n in range(200)]
    head = "device.deviceId -in ["
    fits = head + ",".join(f'"{i}"' for i in ids[:78]) + "]"
    assert len(fits) <= MAX_RULE_LENGTH
    assert isinstance(parse(fits), Comparison)
    too_long = head + ",".join(f'"{i}"' for i in ids[:80]) + "]"
    assert len(too_long) > MAX_RULE_LENGTH
    refused = parse(too_long)
    assert isinstance(refused, NotUnderstood)
    assert refused.position == MAX_RULE_LENGTH


def test_a_rule_of_exactly_the_limit_is_read() -> None:
    rule = 'device.model -eq "' + "x" * (MAX_RULE_LENGTH - 19) + '"'
    assert len(rule) == MAX_RULE_LENGTH
    assert isinstance(parse(rule), Comparison)


def test_names_and_operators_print_in_their_documented_spelling() -> None:
    tree = read(
        'DEVICE.EXTENSIONATTRIBUTE7 NOTSTARTSWITH "a" -OR -NOT device.TRUSTTYPE eq "serverad"'
    )
    assert to_text(tree) == (
        'device.extensionAttribute7 -notStartsWith "a" -or -not device.trustType -eq "serverad"'
    )


def test_values_keep_their_text_and_the_printer_escapes_quotes() -> None:
    tree = C("displayName", Op.EQUALS, 'Rob\'s "best" iPhone')
    assert to_text(tree) == 'device.displayName -eq "Rob\'\'s `"best`" iPhone"'
    assert parse(to_text(tree)) == tree


def test_a_value_with_a_backtick_cannot_be_printed() -> None:
    with pytest.raises(ValueError, match="backtick"):
        to_text(C("model", Op.EQUALS, "a`b"))


def test_nested_groups_keep_their_shape() -> None:
    inner = And((C("model", Op.EQUALS, "a"), C("model", Op.EQUALS, "b")))
    tree = And((inner, C("model", Op.EQUALS, "c")))
    assert (
        to_text(tree)
        == '(device.model -eq "a" -and device.model -eq "b") -and device.model -eq "c"'
    )
    assert parse(to_text(tree)) == tree
    assert to_text(Not(Not(C("model", Op.EQUALS, "a")))) == '-not -not device.model -eq "a"'


def test_comparisons_lists_every_leaf_in_order() -> None:
    tree = read(
        'device.model -eq "a" -or -not (device.isCompliant -eq "True" -and device.model -eq "b")'
    )
    assert [c.property for c in comparisons(tree)] == ["model", "isCompliant", "model"]
