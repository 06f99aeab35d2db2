"""Does a device match a filter-for-devices rule? Three answers: yes, no, or cannot tell.

The device is a mapping in Graph's device JSON shape (`deviceId`, `trustType`, `physicalIds`,
`extensionAttributes: {"extensionAttribute1": ...}`...). A key that is absent means the property
was not read, which is not the same as null: a comparison on it cannot be decided, and the answer
says which property was missing. `-and`/`-or`/`-not` combine the answers in three-valued logic, so
an unread property only matters when the result depends on it.

Semantics from entra-docs `concept-condition-filters-for-devices.md`:
- a property with no value (null: what an unregistered device has for every property) fails the
  positive operators and passes the negative ones ("Policy behavior with filter for devices");
- Contains/NotContains test a substring of a string property and a whole item of a string
  collection (physicalIds, systemLabels);
- extensionAttribute1-15 have a value at evaluation only when the device is "Microsoft Intune
  managed, compliant, or Microsoft Entra hybrid joined"; otherwise they count as null;
and from entra-docs `groups-dynamic-membership.md`: "Regex and string operations aren't case
sensitive"; `-eq null` / `-ne null` test for no value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.core.device_facts import INTUNE_MDM_APP_ID
from shared.core.device_filter import (
    NEGATIVE,
    PROPERTIES,
    Comparison,
    Kind,
    Node,
    Not,
    Operator,
    Or,
    Value,
)


@dataclass(frozen=True, slots=True)
class Match:
    """`matched` is None when the rule's answer depends on something unknown, named in `unknown`."""

    matched: bool | None
    unknown: tuple[str, ...] = ()


class _Unknown(Exception):
    pass


_EXTENSION_PREFIX = "extensionattribute"


def _key(device: Mapping[str, object], key: str) -> object:
    if key not in device:
        raise _Unknown(f"device.{key} was not read")
    return device[key]


def either(*answers: bool | None) -> bool | None:
    """Three-valued or: True wins, then unknown (None)."""
    if any(a is True for a in answers):
        return True
    return None if any(a is None for a in answers) else False


def _extension_attributes_available(device: Mapping[str, object]) -> bool | None:
    """Intune managed, compliant or hybrid joined (the filter page's warning), in 3-valued logic;
    Intune managed is isManaged with Intune's mdmAppId, as in evaluation.management_of."""
    compliant = None if "isCompliant" not in device else device["isCompliant"] is True
    hybrid = None if "trustType" not in device else _fold(device["trustType"]) == "serverad"
    managed = None if "isManaged" not in device else device["isManaged"] is True
    intune_app = (
        None if "mdmAppId" not in device else _fold(device["mdmAppId"]) == INTUNE_MDM_APP_ID
    )
    intune = both(managed, intune_app)
    return either(compliant, hybrid, intune)


def both(*answers: bool | None) -> bool | None:
    """Three-valued and: False wins, then unknown (None)."""
    if any(a is False for a in answers):
        return False
    return None if any(a is None for a in answers) else True


def _fold(value: object) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def _actual(device: Mapping[str, object], name: str) -> object:
    """The device's value for a filter property, None for no value; raises _Unknown."""
    if name.casefold().startswith(_EXTENSION_PREFIX):
        attributes = _key(device, "extensionAttributes")
        if attributes is None:
            return None
        if not isinstance(attributes, Mapping):
            raise _Unknown("device.extensionAttributes is not an object")
        if name not in attributes:
            raise _Unknown(f"device.extensionAttributes.{name} was not read")
        available = _extension_attributes_available(device)
        if available is None:
            raise _Unknown(
                f"device.{name} counts only on an Intune managed, compliant or hybrid joined "
                "device, and isManaged/mdmAppId/isCompliant/trustType do not tell"
            )
        return attributes[name] if available else None
    return _key(device, name)


_POSITIVE = {
    Operator.NOT_EQUALS: Operator.EQUALS,
    Operator.NOT_STARTS_WITH: Operator.STARTS_WITH,
    Operator.NOT_ENDS_WITH: Operator.ENDS_WITH,
    Operator.NOT_CONTAINS: Operator.CONTAINS,
    Operator.NOT_IN: Operator.IN,
}


def _string_test(operator: Operator, actual: str, expected: Value) -> bool:
    text = actual.casefold()
    if operator is Operator.IN:
        assert isinstance(expected, tuple)
        return text in {item.casefold() for item in expected}
    assert isinstance(expected, str)
    wanted = expected.casefold()
    if operator is Operator.EQUALS:
        return text == wanted
    if operator is Operator.STARTS_WITH:
        return text.startswith(wanted)
    if operator is Operator.ENDS_WITH:
        return text.endswith(wanted)
    return wanted in text  # CONTAINS


def _compare(comparison: Comparison, device: Mapping[str, object]) -> bool:
    spec = PROPERTIES[comparison.property.casefold()]
    actual = _actual(device, spec.name)
    expected = comparison.value
    if expected is None:  # -eq null / -ne null
        return (actual is None) == (comparison.operator is Operator.EQUALS)
    if actual is None:
        return comparison.operator in NEGATIVE
    negative = comparison.operator in NEGATIVE
    operator = _POSITIVE.get(comparison.operator, comparison.operator)
    if spec.kind is Kind.BOOLEAN:
        if not isinstance(actual, bool):
            raise _Unknown(f"device.{spec.name} is not true, false or null: {actual!r}")
        result = actual is expected
    elif spec.kind is Kind.COLLECTION:
        if not isinstance(actual, list | tuple) or not all(isinstance(i, str) for i in actual):
            raise _Unknown(f"device.{spec.name} is not a list of strings: {actual!r}")
        assert isinstance(expected, str)
        result = expected.casefold() in {item.casefold() for item in actual}
    else:
        if not isinstance(actual, str):
            raise _Unknown(f"device.{spec.name} is not a string: {actual!r}")
        result = _string_test(operator, actual, expected)
    return result is not negative


def evaluate(node: Node, device: Mapping[str, object]) -> Match:
    """Whether the device matches the rule (before the policy's include/exclude mode)."""
    if isinstance(node, Comparison):
        try:
            return Match(_compare(node, device))
        except _Unknown as missing:
            return Match(None, (str(missing),))
    if isinstance(node, Not):
        inner = evaluate(node.operand, device)
        return Match(None if inner.matched is None else not inner.matched, inner.unknown)
    answers = [evaluate(child, device) for child in node.operands]
    decisive = isinstance(node, Or)  # True decides an -or, False decides an -and
    if any(a.matched is decisive for a in answers):
        return Match(decisive)
    unknown = tuple(dict.fromkeys(r for a in answers for r in a.unknown))
    if unknown:
        return Match(None, unknown)
    return Match(not decisive)
