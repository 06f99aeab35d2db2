"""The Conditional Access "filter for devices" rule language: what it may say, parsing, printing.

Source of every rule here: entra-docs `docs/identity/conditional-access/
concept-condition-filters-for-devices.md` (the supported properties, their operators and values,
the 3,072-character limit). That page sends the syntax itself to entra-docs
`docs/identity/users/groups-dynamic-membership.md` (and Graph's `conditionalaccessfilter.md` to its
"rules with multiple expressions"): `device.<property> -<operator> <value>`, `-and`, `-or`, `-not`,
parentheses, precedence (comparisons, then -not, then -and, then -or), operators with or without
their hyphen, `[ ... ]` lists for -in/-notIn, `null` with -eq/-ne, string escapes.

What the documents leave open is refused, not guessed: the parser returns `NotUnderstood` with
where and why. Examples: `-match`, `-any`/`-all` and `_` (dynamic groups only), an operator the
filter page does not list for that property, a value outside a documented closed set, an
unquoted string, a lone backtick or quote inside a string (the docs give escapes for both).
Evaluation against a device lives in device_filter_eval.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, StrEnum

from shared.core.device_filter_tokens import Refused, Token, describe, tokens

_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
MAX_RULE_LENGTH = 3072  # "The maximum length for the filter rule is 3072 characters"


class Operator(StrEnum):
    EQUALS = "eq"
    NOT_EQUALS = "ne"
    STARTS_WITH = "startsWith"
    NOT_STARTS_WITH = "notStartsWith"
    ENDS_WITH = "endsWith"
    NOT_ENDS_WITH = "notEndsWith"
    CONTAINS = "contains"
    NOT_CONTAINS = "notContains"
    IN = "in"
    NOT_IN = "notIn"


# The filter page's "negative operators": for a property with no value (an unregistered device
# has only nulls) they match, the positive ones do not.
NEGATIVE = frozenset(
    {
        Operator.NOT_EQUALS,
        Operator.NOT_STARTS_WITH,
        Operator.NOT_ENDS_WITH,
        Operator.NOT_CONTAINS,
        Operator.NOT_IN,
    }
)
_OPERATORS = {op.value.casefold(): op for op in Operator}
# Dynamic-group operators the filter page does not list for any device property.
_OTHER_OPERATORS = {"match", "notmatch", "any", "all", "le", "ge", "not"}


class Kind(Enum):
    STRING = "string"
    COLLECTION = "string collection"
    BOOLEAN = "boolean"


@dataclass(frozen=True, slots=True)
class PropertySpec:
    name: str
    kind: Kind
    operators: frozenset[Operator]
    values: tuple[str, ...] = ()  # a documented closed set of values, empty when any string
    guid: bool = False


_ALL = frozenset(Operator)
_EQ = frozenset({Operator.EQUALS, Operator.NOT_EQUALS})
_EQ_IN = _EQ | {Operator.IN, Operator.NOT_IN}
_CONTAINS = frozenset({Operator.CONTAINS, Operator.NOT_CONTAINS})

# The filter page's table "Supported operators and device properties for filters", row by row.
_SPECS = [
    PropertySpec("deviceId", Kind.STRING, _EQ_IN, guid=True),
    PropertySpec("displayName", Kind.STRING, _ALL),
    PropertySpec("deviceOwnership", Kind.STRING, _EQ, ("Personal", "Company")),
    PropertySpec("enrollmentProfileName", Kind.STRING, _ALL),
    PropertySpec("isCompliant", Kind.BOOLEAN, _EQ, ("True", "False")),
    PropertySpec("manufacturer", Kind.STRING, _ALL),
    PropertySpec("mdmAppId", Kind.STRING, _EQ_IN, guid=True),
    PropertySpec("model", Kind.STRING, _ALL),
    PropertySpec("operatingSystem", Kind.STRING, _ALL),
    PropertySpec("operatingSystemVersion", Kind.STRING, _ALL),
    PropertySpec("physicalIds", Kind.COLLECTION, _CONTAINS),
    PropertySpec(
        "profileType",
        Kind.STRING,
        _EQ,
        ("RegisteredDevice", "SecureVM", "Printer", "Shared", "IoT"),
    ),
    PropertySpec("systemLabels", Kind.COLLECTION, _CONTAINS),  # "some of the supported values"
    PropertySpec("trustType", Kind.STRING, _EQ, ("AzureAD", "ServerAD", "Workplace")),
    *(PropertySpec(f"extensionAttribute{n}", Kind.STRING, _ALL) for n in range(1, 16)),
]
# Names match whatever their case: the filter page's own example writes `device.deviceid`.
PROPERTIES = {spec.name.casefold(): spec for spec in _SPECS}

Value = str | bool | None | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    property: str  # the documented spelling, e.g. "extensionAttribute1"
    operator: Operator
    value: Value  # str; bool for isCompliant; None for `null`; tuple for -in/-notIn


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node = Comparison | Not | And | Or


@dataclass(frozen=True, slots=True)
class NotUnderstood:
    """A rule (or part of one) devicemon will not interpret: where (0-based offset) and why."""

    rule: str
    position: int
    reason: str

    def __str__(self) -> str:
        return f"not understood at character {self.position + 1}: {self.reason}"


class _Parser:
    def __init__(self, rule: str) -> None:
        self.tokens = tokens(rule)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def _advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def _keyword(self, word: str) -> bool:
        if self.token.kind == "word" and self.token.text.casefold() == word:
            self.index += 1
            return True
        return False

    def rule(self) -> Node:
        node = self._or()
        if self.token.kind != "end":
            raise Refused(
                self.token.position, f"expected -and, -or or the end, found {describe(self.token)}"
            )
        return node

    def _or(self) -> Node:
        items = [self._and()]
        while self._keyword("-or"):
            items.append(self._and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self) -> Node:
        items = [self._not()]
        while self._keyword("-and"):
            items.append(self._not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _not(self) -> Node:
        if self._keyword("-not"):
            return Not(self._not())
        if self.token.kind == "(":
            opening = self._advance()
            node = self._or()
            if self.token.kind != ")":
                raise Refused(
                    self.token.position,
                    f"expected ')' closing the '(' at character {opening.position + 1}, "
                    f"found {describe(self.token)}",
                )
            self._advance()
            return node
        return self._comparison()

    def _comparison(self) -> Comparison:
        token = self._advance()
        prefix, _, name = token.text.partition(".")
        if token.kind != "word" or prefix.casefold() != "device" or not name:
            raise Refused(token.position, f"expected device.<property>, found {describe(token)}")
        spec = PROPERTIES.get(name.casefold())
        if spec is None:
            raise Refused(
                token.position,
                f"device.{name} is not a property the filter for devices supports",
            )
        operator = self._operator(spec)
        return Comparison(spec.name, operator, self._value(spec, operator))

    def _operator(self, spec: PropertySpec) -> Operator:
        token = self._advance()
        word = token.text.casefold()
        bare = word.removeprefix("-")
        if token.kind == "word" and bare in _OPERATORS:
            operator = _OPERATORS[bare]
            if operator not in spec.operators:
                allowed = ", ".join(f"-{op.value}" for op in Operator if op in spec.operators)
                raise Refused(
                    token.position,
                    f"-{operator.value} is not supported for {spec.name} ({allowed})",
                )
            return operator
        if token.kind == "word" and bare in _OTHER_OPERATORS:
            raise Refused(token.position, f"{token.text} is not an operator of device filters")
        names = ", ".join(f"-{op.value}" for op in Operator)
        raise Refused(token.position, f"expected an operator ({names}), found {describe(token)}")

    def _value(self, spec: PropertySpec, operator: Operator) -> Value:
        token = self.token
        listed = operator in (Operator.IN, Operator.NOT_IN)
        if token.kind == "[":
            if not listed:
                raise Refused(token.position, "a [list] goes only with -in and -notIn")
            return self._list(spec)
        if listed:
            raise Refused(token.position, f"-{operator.value} takes a [list] of strings")
        self._advance()
        if token.kind == "word" and token.text.casefold() == "null":
            if operator not in _EQ:
                raise Refused(token.position, "null can only be compared with -eq or -ne")
            return None
        if token.kind == "word" and token.text.casefold() in ("true", "false"):
            if spec.kind is not Kind.BOOLEAN:
                raise Refused(token.position, f"{spec.name} is not a boolean property")
            return token.text.casefold() == "true"
        if token.kind != "string":
            raise Refused(token.position, f"expected a quoted value, found {describe(token)}")
        return self._checked(spec, token.value, token.position)

    def _list(self, spec: PropertySpec) -> tuple[str, ...]:
        opening = self._advance()
        items: list[str] = []
        while True:
            token = self._advance()
            if token.kind != "string":
                raise Refused(
                    token.position,
                    f"expected a quoted string in the list, found {describe(token)}",
                )
            value = self._checked(spec, token.value, token.position)
            assert isinstance(value, str)  # lists exist only for string properties
            items.append(value)
            separator = self._advance()
            if separator.kind == "]":
                return tuple(items)
            if separator.kind != ",":
                raise Refused(
                    separator.position,
                    f"expected ',' or ']' closing the list at character {opening.position + 1}, "
                    f"found {describe(separator)}",
                )

    @staticmethod
    def _checked(spec: PropertySpec, value: str, position: int) -> str | bool:
        if spec.guid and not _GUID.fullmatch(value):
            raise Refused(position, f"{spec.name} takes a GUID, not {value!r}")
        if spec.values:
            matches = [v for v in spec.values if v.casefold() == value.casefold()]
            if not matches:
                raise Refused(
                    position,
                    f"{spec.name} takes {', '.join(spec.values)} (documented), not {value!r}",
                )
            if spec.kind is Kind.BOOLEAN:
                return matches[0] == "True"
        return value


def parse(rule: str) -> Node | NotUnderstood:
    """The rule's syntax tree, or where and why devicemon does not understand it."""
    if len(rule) > MAX_RULE_LENGTH:
        return NotUnderstood(
            rule, MAX_RULE_LENGTH, f"longer than the documented maximum of {MAX_RULE_LENGTH}"
        )
    if not rule.strip():
        return NotUnderstood(rule, 0, "the rule is empty")
    try:
        return _Parser(rule).rule()
    except Refused as refused:
        return NotUnderstood(rule, refused.position, refused.reason)


def _quoted(value: str) -> str:
    if "`" in value:
        raise ValueError(f"{value!r}: no documented escape writes a backtick inside a value")
    return '"' + value.replace('"', '`"').replace("'", "''") + '"'


def _print_value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return _quoted("True" if value else "False")
    if isinstance(value, tuple):
        return "[" + ", ".join(_quoted(item) for item in value) + "]"
    return _quoted(value)


def _operand(node: Node) -> str:
    # Every compound operand gets parentheses, so parse(print(tree)) gives the same tree back.
    text = to_text(node)
    return f"({text})" if isinstance(node, And | Or) else text


def to_text(node: Node) -> str:
    """The rule in the documented syntax (the canonical spelling of every name and operator)."""
    if isinstance(node, Comparison):
        return f"device.{node.property} -{node.operator.value} {_print_value(node.value)}"
    if isinstance(node, Not):
        return f"-not {_operand(node.operand)}"
    joiner = " -and " if isinstance(node, And) else " -or "
    return joiner.join(_operand(child) for child in node.operands)


def comparisons(node: Node) -> tuple[Comparison, ...]:
    """Every comparison in the rule, left to right."""
    if isinstance(node, Comparison):
        return (node,)
    if isinstance(node, Not):
        return comparisons(node.operand)
    return tuple(c for child in node.operands for c in comparisons(child))
