"""Issue 13 item 8: which CA_POLICY matches which choice of the portal's Grant blade. entra-docs
`concept-conditional-access-grant.md`: "Require all the selected controls (control and control)",
"Require one of the selected controls (control or control)", "By default, Conditional Access
requires all selected controls"."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from shared import settings
from shared.core.models import Policy

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "reason-codes.md").read_text()


def doc_row(policy: Policy) -> str:
    (row,) = [
        line
        for line in DOC.splitlines()
        if (line.startswith("| ") and f"| `{policy.value}`" in line and "selected" in line)
        or (line.startswith("| only") and f"| `{policy.value}` |" in line)
    ]
    return row


@pytest.mark.parametrize(
    ("policy", "portal"),
    [
        (
            Policy.COMPLIANT_AND_HYBRID,
            "**Require all the selected controls** (the portal's default)",
        ),
        (Policy.COMPLIANT_OR_HYBRID, "**Require one of the selected controls**"),
        (Policy.COMPLIANT, "only **Require device to be marked as compliant**"),
        (Policy.HYBRID, "only **Require Microsoft Entra hybrid joined device**"),
    ],
)
def test_the_docs_map_each_policy_to_its_portal_choice(policy: Policy, portal: str) -> None:
    assert portal in doc_row(policy)


@pytest.mark.parametrize("where", [inspect.getsource(settings), Policy.__doc__ or ""])
def test_the_setting_names_the_portal_choices(where: str) -> None:
    where = " ".join(where.replace("#", " ").split())
    assert '"Require all the selected controls"' in where
    assert '"Require one of the selected controls"' in where
