"""The rooms of `shared/` keep their import direction, so the tree keeps telling the architecture.

Imports are read with `ast` from the source (nothing is imported), including imports inside
functions; `if TYPE_CHECKING:` imports count for direction but not for cycles, since they never
run. The map: docs/architecture.md and shared/__init__.py.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = {"settings", "logs", "retry", "telemetry"}  # at the top of shared/, used by every room
WIRING = {"runtime"}  # builds the clients: may use everything, used by nothing in shared/
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "support": {"core", "support"},
    "adapters": {"core", "support", "adapters"},
    "sources": {"core", "support", "adapters", "sources"},
    "processing": {"core", "support", "adapters", "processing"},
    "consumers": {"core", "support", "adapters", "consumers"},
    "views": {"core", "support", "adapters", "views"},
    "wiring": {"core", "support", "adapters", "sources", "processing", "consumers", "views"},
}
# What the pure core may import besides itself: the standard library only.
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def room(module: str) -> str | None:
    """The room of a `shared` module, or None for modules outside `shared`."""
    parts = module.split(".")
    if parts[0] != "shared" or len(parts) < 2:
        return None
    if parts[1] in SUPPORT:
        return "support"
    if parts[1] in WIRING:
        return "wiring"
    return parts[1] if parts[1] in ALLOWED else None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_block(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )


def imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(imported module, whether the import runs) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if _type_checking_block(node):
            typing_only.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        runs = id(node) not in typing_only
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, runs
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, runs
            # `from shared.core import explain` imports the module shared.core.explain
            for alias in node.names:
                yield f"{node.module}.{alias.name}", runs


def import_graph(package: str) -> dict[str, set[tuple[str, bool]]]:
    return {
        module_name(path): set(imports(path)) for path in sorted((ROOT / package).rglob("*.py"))
    }


def known_modules() -> set[str]:
    return {module_name(p) for p in (ROOT / "shared").rglob("*.py")}


def back_arrows(graph: dict[str, set[tuple[str, bool]]]) -> list[str]:
    """Every import from one room into a room it may not use."""
    found = []
    for module, targets in graph.items():
        source_room = room(module)
        if source_room is None:
            continue
        for target, _ in targets:
            target_room = room(target)
            if target_room is not None and target_room not in ALLOWED[source_room]:
                found.append(f"{module} ({source_room}) imports {target} ({target_room})")
    return found


def cycles(graph: dict[str, set[tuple[str, bool]]], modules: set[str]) -> list[list[str]]:
    edges = {
        m: {t for t, runs in ts if runs and t in modules and t != m} for m, ts in graph.items()
    }
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    return found


def test_every_shared_module_lives_in_a_room() -> None:
    homeless = [m for m in known_modules() if m not in ("shared",) and room(m) is None]
    assert homeless == [], "a new module goes into a room (docs/architecture.md)"


def test_imports_flow_one_way() -> None:
    assert back_arrows(import_graph("shared")) == []


def test_the_core_imports_nothing_but_the_standard_library() -> None:
    graph = import_graph("shared")
    outside = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        if room(module) == "core"
        for target, _ in targets
        if target.split(".")[0] not in STDLIB and room(target) != "core"
    ]
    assert outside == []


def test_no_import_cycles_in_shared() -> None:
    assert cycles(import_graph("shared"), known_modules()) == []


@pytest.mark.parametrize("package", ["shared", "handlers"])
def test_the_app_never_imports_the_local_stack(package: str) -> None:
    graph = import_graph(package)
    local = [
        f"{m} imports {t}" for m, ts in graph.items() for t, _ in ts if t.split(".")[0] == "local"
    ]
    assert local == []


def test_shared_never_imports_azure_functions() -> None:
    graph = import_graph("shared")
    found = [m for m, ts in graph.items() for t, _ in ts if t.startswith("azure.functions")]
    assert found == []


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("shared.core.evaluation", "shared.adapters.store"),  # the core reaching an adapter
        ("shared.adapters.servicebus", "shared.processing.pipeline"),  # an adapter calling up
        ("shared.consumers.teams", "shared.sources.sync"),  # a consumer using a source
        ("shared.views.fleet", "shared.runtime"),  # anything but the top using the wiring
    ],
)
def test_a_back_arrow_is_caught(module: str, target: str) -> None:
    """The checker itself can fail: each of these imports, added to the real graph, is found."""
    graph = import_graph("shared")
    graph[module] = {*graph.get(module, set()), (target, True)}
    assert back_arrows(graph) == [f"{module} ({room(module)}) imports {target} ({room(target)})"]


def test_a_cycle_is_caught() -> None:
    graph = import_graph("shared")
    graph["shared.core.models"] = {*graph["shared.core.models"], ("shared.core.records", True)}
    assert cycles(graph, known_modules()) != []
