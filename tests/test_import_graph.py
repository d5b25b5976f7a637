"""The house's imports run one way: no module of dfdetect imports itself back through others, and
every package imports only packages on a lower floor (or its own). Read from the source with ast,
function-local imports included, so a cycle cannot hide inside a function."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dfdetect"

# the floors of the house, bottom up (docs/architecture.md); a package may import its own floor's
# modules and any lower floor's, never a higher one
FLOORS = {
    "dfdetect.utils": 0,
    "dfdetect.facts": 0,
    "dfdetect.scoring": 1,
    "dfdetect.data": 1,
    "dfdetect.models.layers": 1,
    "dfdetect.models.weights": 1,
    "dfdetect.demo": 2,
    "dfdetect.preprocess": 2,
    "dfdetect.models.nets": 2,
    "dfdetect.measure": 3,
    "dfdetect.models.lightning": 3,
    "dfdetect.puface.data": 3,
    "dfdetect.puface.faceid": 4,
    "dfdetect.puface.cloak": 4,
    "dfdetect.table2": 4,
    "dfdetect.puface.purifier": 5,
    "dfdetect.ensemble": 4,
    "dfdetect.puface.evaluation": 6,
    "dfdetect.predict": 5,
    "dfdetect.serve": 6,
    "dfdetect.distributed": 6,
    "dfdetect.run": 7,
    "dfdetect.tasks": 8,
    "dfdetect.bench": 8,
    "dfdetect.cli": 9,
    "dfdetect.__main__": 10,
}
# package __init__ files that only describe their package: importing them is free
ROOT_PACKAGES = {"dfdetect", "dfdetect.models", "dfdetect.puface", "dfdetect.conf"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(path: Path, known: set[str]) -> set[str]:
    """The dfdetect modules ``path`` imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` imports the submodule; `from pkg import name`, pkg itself (a
            # parent package's __init__ runs for every submodule and is not counted as an edge)
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


@cache
def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imported(p, known) - {m} for m, p in mods.items()}


def floor_of(module: str) -> tuple[str, int] | None:
    for package in sorted(FLOORS, key=len, reverse=True):
        if module == package or module.startswith(package + "."):
            return package, FLOORS[package]
    return None


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_graph_reader_sees_function_local_imports_and_cycles():
    tree = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(tree) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    path = PACKAGE / "ensemble" / "members.py"
    assert "dfdetect.models.lightning.checkpoint" in imported(path, set(modules()))


def test_no_import_cycle_in_dfdetect():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_lives_on_a_floor():
    homeless = [m for m in modules() if m not in ROOT_PACKAGES and floor_of(m) is None]
    assert not homeless, f"modules outside the floors of FLOORS: {homeless}"


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_point_down(module):
    if module in ROOT_PACKAGES:
        return
    package, floor = floor_of(module)
    for target in sorted(import_graph()[module]):
        if target in ROOT_PACKAGES:
            continue
        target_package, target_floor = floor_of(target)
        assert target_package == package or target_floor < floor, (
            f"{module} (floor {floor}, {package}) imports {target} (floor {target_floor}, {target_package})"
        )


# the synthetic-data renderer draws faces in one long, flat file; C++ sources are not Python
LONG_MODULES_ALLOWED = {"dfdetect.demo.render"}
MAX_MODULE_LINES = 450


def test_no_module_is_longer_than_the_house_allows():
    long = {
        m: n
        for m, p in modules().items()
        if m not in LONG_MODULES_ALLOWED and (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {long}"
