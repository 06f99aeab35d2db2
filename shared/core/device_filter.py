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


class _Refused(Exception):
    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(", ")", "[", "]", ",", "string", "word", "other", "end"
    text: str
    position: int
    value: str = ""  # a string token's unescaped value


_WORD = re.compile(r"-?[A-Za-z_][A-Za-z0-9_.]*")
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_PUNCTUATION = "()[],"
_STOPS = set(_PUNCTUATION) | {'"', "'", "`"}


def _string(rule: str, start: int) -> tuple[str, int]:
    """Read a quoted string from `start` (its opening quote); return its value and the offset
    after it. Escapes (groups-dynamic-membership.md): a double quote inside a value is written
    `" and a single quote ''. Anything else that could be an escape is refused."""
    quote = rule[start]
    out: list[str] = []
    i = start + 1
    while i < len(rule):
        char = rule[i]
        pair = rule[i : i + 2]
        if pair == '`"':
            out.append('"')
            i += 2
        elif pair == "''":
            out.append("'")
            i += 2
        elif char == quote:
            return "".join(out), i + 1
        elif char == "`":
            raise _Refused(i, 'a backtick inside a string escapes only a double quote (`")')
        elif char in "'\"":
            escape = "''" if char == "'" else '`"'
            raise _Refused(i, f"a lone {char} inside a string (the docs escape it as {escape})")
        else:
            out.append(char)
            i += 1
    raise _Refused(start, "the string is never closed")


def _tokens(rule: str) -> list[_Token]:
    found: list[_Token] = []
    i = 0
    while i < len(rule):
        char = rule[i]
        if char.isspace():
            i += 1
        elif char in _PUNCTUATION:
            found.append(_Token(char, char, i))
            i += 1
        elif char in "\"'":
            value, end = _string(rule, i)
            found.append(_Token("string", rule[i:end], i, value))
            i = end
        elif char == "`":
            raise _Refused(i, "a backtick outside a string (the docs' escape works inside one)")
        else:
            end = i
            while end < len(rule) and not rule[end].isspace() and rule[end] not in _STOPS:
                end += 1
            text = rule[i:end]
            found.append(_Token("word" if _WORD.fullmatch(text) else "other", text, i))
            i = end
    found.append(_Token("end", "", len(rule)))
    return found


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the rule"
    hint = " (a typographic dash, not '-')" if token.text[:1] in "\u2013\u2014\u2212" else ""
    return f"{token.text!r}{hint}"


class _Parser:
    def __init__(self, rule: str) -> None:
        self.tokens = _tokens(rule)
        self.index = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def _advance(self) -> _Token:
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
            raise _Refused(
                self.token.position, f"expected -and, -or or the end, found {_describe(self.token)}"
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
                raise _Refused(
                    self.token.position,
                    f"expected ')' closing the '(' at character {opening.position + 1}, "
                    f"found {_describe(self.token)}",
                )
            self._advance()
            return node
        return self._comparison()

    def _comparison(self) -> Comparison:
        token = self._advance()
        prefix, _, name = token.text.partition(".")
        if token.kind != "word" or prefix.casefold() != "device" or not name:
            raise _Refused(token.position, f"expected device.<property>, found {_describe(token)}")
        spec = PROPERTIES.get(name.casefold())
        if spec is None:
            raise _Refused(
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
                raise _Refused(
                    token.position,
                    f"-{operator.value} is not supported for {spec.name} ({allowed})",
                )
            return operator
        if token.kind == "word" and bare in _OTHER_OPERATORS:
            raise _Refused(token.position, f"{token.text} is not an operator of device filters")
        names = ", ".join(f"-{op.value}" for op in Operator)
        raise _Refused(token.position, f"expected an operator ({names}), found {_describe(token)}")

    def _value(self, spec: PropertySpec, operator: Operator) -> Value:
        token = self.token
        listed = operator in (Operator.IN, Operator.NOT_IN)
        if token.kind == "[":
            if not listed:
                raise _Refused(token.position, "a [list] goes only with -in and -notIn")
            return self._list(spec)
        if listed:
            raise _Refused(token.position, f"-{operator.value} takes a [list] of strings")
        self._advance()
        if token.kind == "word" and token.text.casefold() == "null":
            if operator not in _EQ:
                raise _Refused(token.position, "null can only be compared with -eq or -ne")
            return None
        if token.kind == "word" and token.text.casefold() in ("true", "false"):
            if spec.kind is not Kind.BOOLEAN:
                raise _Refused(token.position, f"{spec.name} is not a boolean property")
            return token.text.casefold() == "true"
        if token.kind != "string":
            raise _Refused(token.position, f"expected a quoted value, found {_describe(token)}")
        return self._checked(spec, token.value, token.position)

    def _list(self, spec: PropertySpec) -> tuple[str, ...]:
        opening = self._advance()
        items: list[str] = []
        while True:
            token = self._advance()
            if token.kind != "string":
                raise _Refused(
                    token.position,
                    f"expected a quoted string in the list, found {_describe(token)}",
                )
            value = self._checked(spec, token.value, token.position)
            assert isinstance(value, str)  # lists exist only for string properties
            items.append(value)
            separator = self._advance()
            if separator.kind == "]":
                return tuple(items)
            if separator.kind != ",":
                raise _Refused(
                    separator.position,
                    f"expected ',' or ']' closing the list at character {opening.position + 1}, "
                    f"found {_describe(separator)}",
                )

    @staticmethod
    def _checked(spec: PropertySpec, value: str, position: int) -> str | bool:
        if spec.guid and not _GUID.fullmatch(value):
            raise _Refused(position, f"{spec.name} takes a GUID, not {value!r}")
        if spec.values:
            matches = [v for v in spec.values if v.casefold() == value.casefold()]
            if not matches:
                raise _Refused(
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
    except _Refused as refused:
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
