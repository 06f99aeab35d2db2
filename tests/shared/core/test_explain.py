"""Every code the evaluation can produce has words, and they agree with docs/reason-codes.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.core import explain
from shared.core.models import Compliance, JoinType, Management, Policy, Reason, Warning_

DOC = (Path(__file__).resolve().parents[3] / "docs" / "reason-codes.md").read_text()


@pytest.mark.parametrize("code", [r.value for r in Reason])
def test_every_reason_is_explained_and_documented(code: str) -> None:
    words = explain.reason(code)
    assert words.code == code and words.short and words.meaning and words.action
    assert f"| `{code}` |" in DOC


@pytest.mark.parametrize("code", [w.value for w in Warning_])
def test_every_warning_is_explained_and_documented(code: str) -> None:
    words = explain.warning(code)
    assert words.short and words.meaning and words.action
    assert f"| `{code}` |" in DOC


@pytest.mark.parametrize(
    ("table", "values"),
    [
        (explain.JOIN_TYPES, JoinType),
        (explain.COMPLIANCE, Compliance),
        (explain.MANAGEMENT, Management),
        (explain.POLICIES, Policy),
    ],
)
def test_every_enum_value_has_words(table: dict[str, str], values: type) -> None:
    assert set(table) == {v.value for v in values}  # type: ignore[attr-defined]


def test_unknown_codes_from_a_newer_version_still_read_well() -> None:
    assert explain.reason("NEW_CODE").short == "NEW_CODE"
    assert "docs/reason-codes.md" in explain.warning("NEW_WARNING").action
    assert explain.reasons_in_words(["NOT_COMPLIANT", "NEW_CODE"]) == "not compliant, NEW_CODE"
    assert explain.join_type("") == "unknown join type"


@pytest.mark.parametrize(
    ("doc", "values"),
    [
        ("alert.schema.json", [*Reason, *Warning_, *Management]),
        ("openapi.yaml", [*Reason, *Management]),
    ],
)
def test_the_contracts_know_every_code(doc: str, values: list[str]) -> None:
    """The alert schema and the read API's description accept every code evaluation produces."""
    text = (Path(__file__).resolve().parents[3] / "docs" / doc).read_text()
    missing = [v.value for v in values if v.value not in text]  # type: ignore[attr-defined]
    assert missing == []
