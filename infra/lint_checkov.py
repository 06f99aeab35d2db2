"""Scan infra/ with checkov (`make lint-infra`) and hold the result to the project's rules.

    python infra/lint_checkov.py --checkov .venv/checkov/bin/checkov

Fails when checkov cannot parse a template, when a check fails, or when a check is suppressed
(`// checkov:skip=ID: why`) without a justification. Runs offline (--skip-download) and scans
every template under infra/.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parent
MIN_JUSTIFICATION = 30  # characters: a reason, not "ok" or "n/a"


# checkov 3.3 (the newest) pins pycep-parser 0.5.1, whose grammar predates Bicep's fail() function
# (Bicep 0.33): a template that calls it is a parsing error and goes unscanned. The scan reads a
# copy of infra/ in which fail('...') reads as string('...'): the same place in an expression,
# and nothing any checkov check looks at.
FAIL_CALL = re.compile(r"\bfail\(")


def scannable_copy(infra: Path, into: Path) -> Path:
    """A copy of `infra` (templates only) that checkov's parser can read."""
    copy = into / infra.name
    for template in infra.rglob("*.bicep"):
        target = copy / template.relative_to(infra)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(FAIL_CALL.sub("string(", template.read_text(encoding="utf-8")))
    return copy


def checkov_command(checkov: str, infra: Path = INFRA) -> list[str]:
    command = [checkov, "--directory", str(infra), "--framework", "bicep"]
    command += ["--skip-download", "--output", "json", "--compact"]
    return command


def judge(report: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, notes) for one checkov JSON report."""
    results = report.get("results", {})
    problems: list[str] = []
    for path in results.get("parsing_errors", []):
        problems.append(f"checkov could not parse {path}")
    for check in results.get("failed_checks", []):
        problems.append(
            f"{check['check_id']} failed on {check['resource']} "
            f"({check['file_path']}:{check['file_line_range'][0]}): {check.get('check_name', '')}"
        )
    notes: list[str] = []
    for check in results.get("skipped_checks", []):
        reason = ((check.get("check_result") or {}).get("suppress_comment") or "").strip()
        where = f"{check['check_id']} on {check['resource']} ({check['file_path']})"
        if len(reason) < MIN_JUSTIFICATION or reason == "No comment provided":
            problems.append(f"{where} is suppressed without a justification")
        else:
            notes.append(f"{where}: {reason}")
    if report.get("summary", {}).get("resource_count", 0) == 0:
        problems.append("checkov found no resources in infra/ (wrong directory?)")
    return problems, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", default="checkov", help="checkov executable")
    parser.add_argument("--verbose", action="store_true", help="list every suppression")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            checkov_command(args.checkov, scannable_copy(INFRA, Path(scratch))),
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(done.stdout[-2000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        print("lint-infra: checkov did not produce a JSON report", file=sys.stderr)
        return 2
    problems, notes = judge(report)
    summary = report.get("summary", {})
    if args.verbose:
        for note in notes:
            print(f"  suppressed: {note}")
    print(
        f"lint-infra: checkov {summary.get('checkov_version', '?')}: "
        f"{summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, "
        f"{summary.get('skipped', 0)} suppressed with a justification in the template, "
        f"{summary.get('parsing_errors', 0)} parsing errors",
        flush=True,
    )
    for problem in problems:
        print(f"lint-infra: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
