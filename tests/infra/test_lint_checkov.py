"""infra/lint_checkov.py: what `make lint-infra` lets through (checkov itself runs there only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from infra import lint_checkov
from tests.infra import bicep

JUSTIFIED = "Graph posts notifications from the internet, so the app must stay public."


def report(**results: Any) -> dict[str, Any]:
    return {"results": results, "summary": {"resource_count": 3, "passed": 1}}


def skipped(reason: str) -> dict[str, Any]:
    return {
        "check_id": "CKV_AZURE_222",
        "resource": "Microsoft.Web/sites.site",
        "file_path": "/modules/functionapp.bicep",
        "check_result": {"result": "SKIPPED", "suppress_comment": reason},
    }


def test_a_clean_report_passes_and_lists_the_justified_suppressions() -> None:
    problems, notes = lint_checkov.judge(report(skipped_checks=[skipped(JUSTIFIED)]))
    assert problems == []
    assert notes == [
        f"CKV_AZURE_222 on Microsoft.Web/sites.site (/modules/functionapp.bicep): {JUSTIFIED}"
    ]


def test_failures_parse_errors_and_bare_suppressions_fail() -> None:
    failed = {
        "check_id": "CKV_AZURE_35",
        "check_name": "Storage default network rule",
        "resource": "Microsoft.Storage/storageAccounts.account",
        "file_path": "/modules/storage.bicep",
        "file_line_range": [24, 46],
    }
    problems, _ = lint_checkov.judge(
        report(
            failed_checks=[failed],
            parsing_errors=["/work/infra/modules/x.bicep"],
            skipped_checks=[skipped("No comment provided"), skipped("n/a")],
        )
    )
    assert len(problems) == 4
    assert any("CKV_AZURE_35 failed" in p for p in problems)
    assert any("could not parse" in p for p in problems)
    assert sum("without a justification" in p for p in problems) == 2


def test_an_empty_scan_fails() -> None:
    problems, _ = lint_checkov.judge({"results": {}, "summary": {"resource_count": 0}})
    assert problems


def test_checkov_runs_offline_on_all_of_infra() -> None:
    command = lint_checkov.checkov_command("checkov")
    assert command[:5] == [
        "checkov",
        "--directory",
        str(lint_checkov.INFRA),
        "--framework",
        "bicep",
    ]
    assert "--skip-download" in command
    # Every template is scanned: nothing is left out with --skip-path or --skip-check.
    assert "--skip-path" not in command and "--skip-check" not in command
    assert not hasattr(lint_checkov, "NOT_SCANNED")


def test_the_scanned_copy_differs_only_in_fail_calls(tmp_path: Path) -> None:
    copy = lint_checkov.scannable_copy(lint_checkov.INFRA, tmp_path)
    originals = sorted(p.relative_to(lint_checkov.INFRA) for p in bicep.bicep_files())
    assert sorted(p.relative_to(copy) for p in copy.rglob("*.bicep")) == originals
    rewritten = 0
    for relative in originals:
        before = (lint_checkov.INFRA / relative).read_text(encoding="utf-8").splitlines()
        after = (copy / relative).read_text(encoding="utf-8").splitlines()
        assert len(before) == len(after)
        for old, new in zip(before, after, strict=True):
            if old != new:
                rewritten += 1
                assert new == re.sub(r"\bfail\(", "string(", old)
    # functionapp.bicep's zone redundancy rule calls fail() (test_flex_rules.py).
    assert rewritten >= 1


def test_only_a_call_to_fail_is_rewritten(tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "t.bicep").write_text(
        "var a = x ? fail('no failover(1) here') : failover(2)\nvar b = myfail(3)\n"
    )
    copy = lint_checkov.scannable_copy(infra, tmp_path / "out")
    assert (copy / "t.bicep").read_text() == (
        "var a = x ? string('no failover(1) here') : failover(2)\nvar b = myfail(3)\n"
    )
