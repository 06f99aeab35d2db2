"""What `make` needs from the machine, checked in its first seconds: the one list that the
Makefile and .ci/run share.

As root with Debian's apt, what is missing is installed; otherwise the check stops with the exact
command to run, instead of `make test` failing minutes later in a test that needed Chromium or in
a pip build that needed a C compiler.

Runs under the system `python3` before any virtual environment exists, so it uses the standard
library only and stays parseable by older Pythons (it must be able to say "too old").

    python3 -m local.prereqs [--check-only] [make goals...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIN_PYTHON = (3, 11)  # pyproject.toml requires-python
MIN_NODE = 20  # README; Debian 12 ships 18, which Azurite's npm install only warns about
# Goals that run `setup` (Azurite from npm): everything else needs only the Python venv.
NODE_GOALS = frozenset({"setup", "run", "test", "bench", "chaos", "stack"})
# tests/test_report_browser.py renders the HTML report in headless Chromium and fails without it.
BROWSER_GOALS = frozenset({"test"})
# What the Makefile's venv stamp is rebuilt from: python-qpid-proton then builds from source.
PY_INPUTS = ("requirements.txt", "requirements-dev.txt", "pyproject.toml")
PY_STAMP = ".venv/.installed"


@dataclass(frozen=True)
class Facts:
    """What the machine has, as far as `make` cares. Observed once by `observe`."""

    commands: frozenset[str]  # the ones on PATH among COMMANDS
    python: tuple[int, int]
    debian_python: bool  # headers and venv for it come from Debian packages
    venv_module: bool  # `python3 -m venv` works (Debian splits it into pythonX.Y-venv)
    venv_exists: bool
    build_needed: bool  # the venv stamp is missing or older than the requirements
    python_headers: bool
    ssl_headers: bool
    node_major: int | None


@dataclass(frozen=True)
class Missing:
    need: str  # what, and what for
    package: str | None  # the Debian package that provides it; None: apt cannot help
    optional: bool = False


COMMANDS = ("make", "node", "npm", "chromium", "cc", "gcc", "apt-get", "sudo")


def missing(goals: Iterable[str], facts: Facts) -> list[Missing]:
    """Everything the goals need that the machine lacks, in install order."""
    goals = set(goals)
    out: list[Missing] = []
    if facts.python < MIN_PYTHON:
        want = ".".join(map(str, MIN_PYTHON))
        found = ".".join(map(str, facts.python))
        out.append(
            Missing(f"Python {want}+ (found {found}): run make PYTHON=python{want} ...", None)
        )
    if "make" not in facts.commands:
        out.append(Missing("make", "make"))
    if not facts.venv_exists and not facts.venv_module:
        tag = "{}.{}".format(*facts.python)
        out.append(
            Missing(
                f"the venv module of Python {tag} (creates .venv)",
                f"python{tag}-venv" if facts.debian_python else None,
            )
        )
    if facts.build_needed:
        # python-qpid-proton (the local AMQP broker) compiles its C core at pip install time.
        if not facts.commands & {"cc", "gcc"}:
            out.append(Missing("a C compiler (python-qpid-proton builds from source)", "gcc"))
        if not facts.python_headers:
            tag = "{}.{}".format(*facts.python)
            out.append(
                Missing(
                    f"the Python {tag} headers, Python.h (python-qpid-proton builds from source)",
                    f"python{tag}-dev" if facts.debian_python else None,
                )
            )
        if not facts.ssl_headers:
            # Without them proton builds without TLS, which the loopback broker does not use.
            out.append(Missing("OpenSSL headers (proton's TLS)", "libssl-dev", optional=True))
    if goals & NODE_GOALS:
        if "node" not in facts.commands:
            out.append(Missing(f"Node.js {MIN_NODE}+ (runs Azurite)", "nodejs"))
        if "npm" not in facts.commands:
            out.append(Missing("npm (installs Azurite)", "npm"))
    if goals & BROWSER_GOALS and "chromium" not in facts.commands:
        out.append(
            Missing("Chromium (tests/test_report_browser.py renders the report)", "chromium")
        )
    return out


def warnings(goals: Iterable[str], facts: Facts) -> list[str]:
    """What may work but is below what the README promises."""
    goals = set(goals)
    if goals & NODE_GOALS and facts.node_major is not None and facts.node_major < MIN_NODE:
        return [f"Node.js {facts.node_major} is older than the {MIN_NODE}+ the README asks for"]
    return []


def apt_commands(packages: Sequence[str], *, root: bool, sudo: bool) -> list[list[str]]:
    """The apt-get calls that install `packages`, as root or through sudo."""
    prefix = [] if root or not sudo else ["sudo"]
    return [
        [*prefix, "apt-get", "update"],
        [*prefix, "apt-get", "install", "-y", *packages],
    ]


def advice(lacking: Sequence[Missing], facts: Facts, *, root: bool) -> str:
    """The message that stops `make`: what is missing and the exact command that fixes it."""
    lines = ["devicemon: this machine lacks what make needs:"]
    lines += [f"  - {m.need}" + (" (optional)" if m.optional else "") for m in lacking]
    packages = [m.package for m in lacking if m.package]
    if packages and "apt-get" in facts.commands:
        commands = apt_commands(packages, root=root, sudo="sudo" in facts.commands)
        shown = " && ".join(" ".join(c) for c in commands)
        if not root and "sudo" not in facts.commands:
            shown = f'su -c "{shown}"'
        lines += ["Install them with:", f"  {shown}"]
    elif packages:
        lines.append("Install them with your system's package manager (Debian names: ")
        lines[-1] += " ".join(packages) + ")."
    return "\n".join(lines)


def _major(version: str) -> int | None:
    head = version.strip().lstrip("v").split(".")[0]
    return int(head) if head.isdigit() else None


def _node_major(node: str | None) -> int | None:
    if node is None:
        return None
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return _major(done.stdout)


def _build_needed(root: Path) -> bool:
    stamp = root / PY_STAMP
    if not stamp.exists():
        return True
    built = stamp.stat().st_mtime
    return any((root / p).stat().st_mtime > built for p in PY_INPUTS if (root / p).exists())


def _venv_module() -> bool:
    # Debian's python3 has `venv` but not `ensurepip` until pythonX.Y-venv is installed.
    try:
        import ensurepip  # noqa: F401
        import venv  # noqa: F401
    except ImportError:
        return False
    return True


def observe(root: Path, path: str | None) -> Facts:
    """Look at the machine: PATH lookups, headers, the venv stamp, `node --version`."""
    found = {c: shutil.which(c, path=path) for c in COMMANDS}
    include = Path(sysconfig.get_paths()["include"])
    return Facts(
        commands=frozenset(c for c, where in found.items() if where),
        python=(sys.version_info[0], sys.version_info[1]),
        debian_python=os.path.realpath(sys.executable).startswith("/usr/bin/"),
        venv_module=_venv_module(),
        venv_exists=(root / ".venv").is_dir(),
        build_needed=_build_needed(root),
        python_headers=(include / "Python.h").exists(),
        ssl_headers=Path("/usr/include/openssl/ssl.h").exists(),
        node_major=_node_major(found["node"]),
    )


def install(packages: Sequence[str], run: Callable[..., object]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in apt_commands(packages, root=True, sudo=False):
        run([command[0], "-qq", *command[1:]], check=True, env=env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m local.prereqs", description=__doc__)
    parser.add_argument("goals", nargs="*", help="the make goals about to run")
    parser.add_argument(
        "--check-only", action="store_true", help="never install; print the command instead"
    )
    args = parser.parse_args(argv)
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    path = os.environ.get("PATH")
    facts = observe(ROOT, path)
    for line in warnings(args.goals, facts):
        print(f"devicemon: warning: {line}", file=sys.stderr)
    lacking = missing(args.goals, facts)
    packages = [m.package for m in lacking if m.package]
    can_install = root and not args.check_only and "apt-get" in facts.commands
    if packages and can_install:
        print(f"devicemon: installing {' '.join(packages)} (apt-get, as root)", file=sys.stderr)
        try:
            install(packages, subprocess.run)
        except subprocess.CalledProcessError as failed:
            print(f"devicemon: apt-get failed ({failed.returncode})", file=sys.stderr)
        facts = observe(ROOT, path)
        lacking = missing(args.goals, facts)
    if not lacking:
        return 0
    print(advice(lacking, facts, root=root), file=sys.stderr)
    return 0 if all(m.optional for m in lacking) else 1


if __name__ == "__main__":
    sys.exit(main())
