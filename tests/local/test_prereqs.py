"""local/prereqs.py: what `make` needs from the machine, and what it says or does when it lacks it.

The decisions are pure functions of observed facts; the end-to-end tests run the module on a PATH
built in a temporary directory, so a missing Chromium is simulated without touching the system,
and a stand-in `apt-get` records what would be installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from local import prereqs
from local.prereqs import Facts, Missing

ROOT = Path(__file__).resolve().parents[2]
ALL = frozenset({"make", "node", "npm", "chromium", "gcc", "cc", "apt-get", "sudo"})
READY = Facts(
    commands=ALL,
    python=(3, 11),
    debian_python=True,
    venv_module=True,
    venv_exists=True,
    build_needed=False,
    python_headers=True,
    ssl_headers=True,
    node_major=20,
)


def lacking(goals: list[str], facts: Facts) -> list[str | None]:
    return [m.package for m in prereqs.missing(goals, facts)]


@pytest.mark.parametrize("goals", [[], ["lint"], ["run"], ["test"], ["stack"], ["run", "test"]])
def test_a_ready_machine_lacks_nothing(goals: list[str]) -> None:
    assert prereqs.missing(goals, READY) == []
    assert prereqs.warnings(goals, READY) == []


@pytest.mark.parametrize(
    ("goals", "expected"),
    [
        (["test"], ["chromium"]),
        (["run", "test"], ["chromium"]),
        (["run"], []),
        (["stack"], []),
        (["lint"], []),
    ],
)
def test_only_test_needs_chromium(goals: list[str], expected: list[str]) -> None:
    facts = replace(READY, commands=ALL - {"chromium"})
    assert lacking(goals, facts) == expected


@pytest.mark.parametrize(
    ("goals", "expected"),
    [
        (["run"], ["nodejs", "npm"]),
        (["test"], ["nodejs", "npm"]),
        (["setup"], ["nodejs", "npm"]),
        (["bench"], ["nodejs", "npm"]),
        (["lint"], []),
        ([], []),
    ],
)
def test_goals_that_start_azurite_need_node_and_npm(goals: list[str], expected: list[str]) -> None:
    facts = replace(READY, commands=ALL - {"node", "npm"})
    assert lacking(goals, facts) == expected


def test_building_the_venv_needs_a_compiler_and_headers_only_when_it_is_rebuilt() -> None:
    bare = replace(
        READY,
        commands=ALL - {"gcc", "cc"},
        python_headers=False,
        ssl_headers=False,
        venv_module=False,
    )
    assert lacking(["lint"], bare) == []
    rebuilding = replace(bare, build_needed=True, venv_exists=False)
    assert lacking(["lint"], rebuilding) == [
        "python3.11-venv",
        "gcc",
        "python3.11-dev",
        "libssl-dev",
    ]
    assert [m.optional for m in prereqs.missing(["lint"], rebuilding)] == [
        False,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize("commands", [ALL - {"gcc"}, ALL - {"cc"}])
def test_either_compiler_name_will_do(commands: frozenset[str]) -> None:
    assert lacking(["lint"], replace(READY, commands=commands, build_needed=True)) == []


def test_a_python_not_from_debian_gets_no_apt_package_for_its_headers() -> None:
    facts = replace(READY, debian_python=False, python_headers=False, build_needed=True)
    assert lacking(["lint"], facts) == [None]


def test_too_old_a_python_is_named_with_the_way_out() -> None:
    found = prereqs.missing(["lint"], replace(READY, python=(3, 9)))
    assert found == [Missing("Python 3.11+ (found 3.9): run make PYTHON=python3.11 ...", None)]


def test_make_itself_is_checked_for_ci() -> None:
    assert lacking(["test"], replace(READY, commands=ALL - {"make"})) == ["make"]


@pytest.mark.parametrize(("major", "warned"), [(18, True), (19, True), (20, False), (22, False)])
def test_an_old_node_is_a_warning_not_a_stop(major: int, warned: bool) -> None:
    facts = replace(READY, node_major=major)
    assert bool(prereqs.warnings(["run"], facts)) is warned
    assert prereqs.warnings(["lint"], facts) == []
    assert prereqs.missing(["run"], facts) == []


@pytest.mark.parametrize(
    ("root", "commands", "expected"),
    [
        (True, ALL, "apt-get update && apt-get install -y chromium nodejs"),
        (False, ALL, "sudo apt-get update && sudo apt-get install -y chromium nodejs"),
        (
            False,
            ALL - {"sudo"},
            'su -c "apt-get update && apt-get install -y chromium nodejs"',
        ),
    ],
)
def test_the_advice_is_the_exact_command(
    root: bool, commands: frozenset[str], expected: str
) -> None:
    lacks = [Missing("Chromium", "chromium"), Missing("Node.js", "nodejs")]
    text = prereqs.advice(lacks, replace(READY, commands=commands), root=root)
    assert text.splitlines()[-1] == f"  {expected}"
    assert "  - Chromium" in text and "  - Node.js" in text


def test_without_apt_the_advice_names_the_debian_packages() -> None:
    lacks = [Missing("Chromium", "chromium")]
    text = prereqs.advice(lacks, replace(READY, commands=ALL - {"apt-get"}), root=True)
    assert "apt-get" not in text
    assert "(Debian names: chromium)" in text


@pytest.mark.parametrize(("version", "major"), [("v20.20.2\n", 20), ("v18.1.0", 18), ("", None)])
def test_node_version_parsing(version: str, major: int | None) -> None:
    assert prereqs._major(version) == major


def path_without_chromium(bin_dir: Path, *extra: str) -> str:
    """A PATH with the real tools the check looks for, except Chromium (and sudo)."""
    bin_dir.mkdir()
    for name in ("make", "node", "npm", "gcc", "cc", *extra):
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    return str(bin_dir)


def run_check(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.prereqs", *args],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_without_chromium_make_test_stops_at_once_with_the_apt_command(tmp_path: Path) -> None:
    path = path_without_chromium(tmp_path / "bin", "apt-get")
    done = run_check(path, "--check-only", "test")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert "  - Chromium (tests/test_report_browser.py renders the report)" in lines
    prefix = "" if os.geteuid() == 0 else "su -c "
    command = "apt-get update && apt-get install -y chromium"
    assert lines[-1] == (f"  {command}" if not prefix else f'  {prefix}"{command}"')
    assert run_check(path, "--check-only", "run").returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="installing is what root does; others get advice")
def test_as_root_it_installs_what_is_missing_with_apt_get(tmp_path: Path) -> None:
    path = path_without_chromium(tmp_path / "bin")
    log = tmp_path / "apt.log"
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    # Stands in for apt-get: records its arguments and "installs" chromium into the PATH.
    fake = tmp_path / "bin" / "apt-get"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$DEBIAN_FRONTEND $*" >> {log}\n'
        f'case "$*" in *install*) {shutil.which("ln")} -s {browser} {tmp_path}/bin/;; esac\n'
    )
    fake.chmod(0o755)
    done = run_check(path, "test")
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [
        "noninteractive -qq update",
        "noninteractive -qq install -y chromium",
    ]


def test_make_runs_the_check_before_anything_else() -> None:
    # Run as `make test` runs this very test: a nested make prints "Entering directory" first
    # unless told not to, which says nothing about the order of the recipe.
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert done.stdout.splitlines()[0].endswith("-m local.prereqs test")
