"""Property-based tests of the filter language: any rule devicemon can build prints to text that
parses back to the same rule with the same verdict on any device; any documented re-spelling of
that text (operators with or without the hyphen and in any case, property names in any case,
single or double quotes, spaces, redundant parentheses) reads the same; nothing makes the parser
raise. Rules are drawn from the property table of entra-docs
`concept-condition-filters-for-devices.md`, with its operators and documented values only."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.core.device_filter import (
    MAX_RULE_LENGTH,
    NEGATIVE,
    PROPERTIES,
    And,
    Comparison,
    Kind,
    Node,
    Not,
    NotUnderstood,
    Operator,
    Or,
    PropertySpec,
    parse,
    to_text,
)
from shared.core.device_filter_eval import evaluate

INTUNE = "0000000a-0000-0000-c000-000000000000"
# Values shared by rules and devices, so that comparisons often hit.
POOL = ["SAW", "saw", "Windows", "10.0.19041", "[ZTDId]:value", "M365Managed", "O'Brien", 'a"b', ""]
SPECS = sorted(PROPERTIES.values(), key=lambda spec: spec.name)

text = st.text(
    alphabet=st.characters(exclude_characters="`", exclude_categories=["Cs"]), max_size=12
)
plain = st.one_of(st.sampled_from(POOL), text)
guids = st.uuids().map(str) | st.sampled_from([INTUNE, "AAAAAAAA-0000-1111-2222-BBBBBBBBBBBB"])


def values_for(spec: PropertySpec) -> st.SearchStrategy[str]:
    if spec.guid:
        return guids
    if spec.values:
        return st.sampled_from([*spec.values, *(v.upper() for v in spec.values)])
    return plain


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    spec = draw(st.sampled_from(SPECS))
    operator = draw(st.sampled_from(sorted(spec.operators)))
    value: Any
    if operator in (Operator.IN, Operator.NOT_IN):
        value = tuple(draw(st.lists(values_for(spec), min_size=1, max_size=3)))
    elif operator in (Operator.EQUALS, Operator.NOT_EQUALS) and draw(st.booleans()) is False:
        value = None if draw(st.integers(0, 3)) == 0 else draw(values_for(spec))
    else:
        value = draw(values_for(spec))
    if spec.kind is Kind.BOOLEAN and value is not None:
        value = str(value).casefold() == "true"
    return Comparison(spec.name, operator, value)


def _grow(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    several = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(children.map(Not), several.map(And), several.map(Or))


rules: st.SearchStrategy[Node] = st.recursive(comparisons(), _grow, max_leaves=6)


def _device_value(spec: PropertySpec) -> st.SearchStrategy[Any]:
    if spec.kind is Kind.BOOLEAN:
        return st.sampled_from([True, False, None])
    if spec.kind is Kind.COLLECTION:
        return st.lists(values_for(spec), max_size=3)
    return st.none() | values_for(spec)


_EXTENSIONS = st.fixed_dictionaries(
    {f"extensionAttribute{n}": st.none() | st.sampled_from(POOL) for n in range(1, 16)}
)
# A Graph device JSON object; any property may be missing (not read) or null.
devices = st.fixed_dictionaries(
    {},
    optional={
        **{
            spec.name: _device_value(spec)
            for spec in SPECS
            if not spec.name.startswith("extensionAttribute")
        },
        "extensionAttributes": st.none() | _EXTENSIONS,
        "isManaged": st.sampled_from([True, False, None]),
        "mdmAppId": st.sampled_from([INTUNE, None, str(uuid.UUID(int=7))]),
    },
)


def printable(tree: Node) -> bool:
    return len(to_text(tree)) <= MAX_RULE_LENGTH


@settings(max_examples=100, deadline=None)
@given(rules, devices)
def test_printing_and_reparsing_gives_the_same_rule_and_verdict(
    tree: Node, device: dict[str, Any]
) -> None:
    assume(printable(tree))
    again = parse(to_text(tree))
    assert again == tree
    assert evaluate(again, device) == evaluate(tree, device)


@st.composite
def respelled(draw: st.DrawFn, tree: Node) -> str:
    """The rule written as a person might, within what the docs allow."""

    def case(word: str) -> str:
        spellings = [word, word.lower(), word.upper(), word.swapcase()]
        return draw(st.sampled_from(spellings))

    def space() -> str:
        return draw(st.sampled_from([" ", "  ", "\t", "\n "]))

    def quoted(value: str) -> str:
        if draw(st.booleans()):
            return "'" + value.replace("'", "''").replace('"', '`"') + "'"
        return '"' + value.replace('"', '`"').replace("'", "''") + '"'

    def value_text(value: Any) -> str:
        if value is None:
            return case("null")
        if isinstance(value, bool):
            return case(str(value).lower()) if draw(st.booleans()) else quoted(str(value))
        if isinstance(value, tuple):
            return "[" + ("," + space()).join(quoted(item) for item in value) + "]"
        return quoted(value)

    def write(node: Node) -> str:
        if isinstance(node, Comparison):
            operator = ("-" if draw(st.booleans()) else "") + case(node.operator.value)
            written = (
                f"{case('device')}.{case(node.property)}{space()}{operator}{space()}"
                f"{value_text(node.value)}"
            )
            return f"({written})" if draw(st.booleans()) else written
        if isinstance(node, Not):
            inner = write(node.operand)
            wrap = isinstance(node.operand, And | Or)
            return f"{case('-not')}{space()}" + (f"({inner})" if wrap else inner)
        joiner = case("-and" if isinstance(node, And) else "-or")
        parts = [
            f"({write(child)})" if isinstance(child, And | Or) else write(child)
            for child in node.operands
        ]
        return (space() + joiner + space()).join(parts)

    return write(tree)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_documented_respellings_read_the_same(data: st.DataObject) -> None:
    tree = data.draw(rules)
    written = data.draw(respelled(tree))
    assume(len(written) <= MAX_RULE_LENGTH)
    assert parse(written) == tree


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=80)
    | st.builds(
        lambda a, b: a + b,
        st.sampled_from([*POOL, "device.model -eq ", "(", "-not "]),
        st.text(max_size=40),
    )
)
def test_the_parser_never_raises(rule: str) -> None:
    result = parse(rule)
    if isinstance(result, NotUnderstood):
        assert 0 <= result.position <= len(rule)
        assert result.rule == rule and result.reason
    else:
        assert parse(to_text(result)) == result


NEGATION = {
    Operator.NOT_EQUALS: Operator.EQUALS,
    Operator.NOT_STARTS_WITH: Operator.STARTS_WITH,
    Operator.NOT_ENDS_WITH: Operator.ENDS_WITH,
    Operator.NOT_CONTAINS: Operator.CONTAINS,
    Operator.NOT_IN: Operator.IN,
}


negative_comparisons = comparisons().filter(
    lambda c: c.operator in NEGATIVE and c.value is not None
)


@settings(max_examples=100, deadline=None)
@given(negative_comparisons, devices)
def test_a_negative_operator_is_the_negation_of_its_positive(
    comparison: Comparison, device: dict[str, Any]
) -> None:
    positive = Comparison(comparison.property, NEGATION[comparison.operator], comparison.value)
    negative_result = evaluate(comparison, device)
    positive_result = evaluate(positive, device)
    if positive_result.matched is None:
        assert negative_result.matched is None
    else:
        assert negative_result.matched is (not positive_result.matched)


small_rules: st.SearchStrategy[Node] = st.recursive(comparisons(), _grow, max_leaves=3)


@settings(max_examples=100, deadline=None)
@given(st.lists(small_rules, min_size=2, max_size=3), devices)
def test_de_morgan_holds_with_unknowns(operands: list[Node], device: dict[str, Any]) -> None:
    left = evaluate(Not(And(tuple(operands))), device)
    right = evaluate(Or(tuple(Not(o) for o in operands)), device)
    assert left.matched is right.matched
