"""The library's modules import one way: no cycles, each layer only from itself or the layers below, small modules.

Every module of ``lib/entropylab`` is parsed with :mod:`ast`; every import counts, wherever it stands (module
level, inside a function, under ``if TYPE_CHECKING:``) and whatever its form (absolute, relative,
``importlib.import_module("entropylab...")``). The root ``entropylab/__init__.py`` is exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
PACKAGE = "entropylab"
MAX_LINES = 500

#: The first name under ``entropylab`` -> its layer. A module may import its own package (the same first name)
#: and any package of a lower layer; nothing of its own layer's other packages and nothing above. A first name
#: missing here (a module left at an old path, such as ``entropylab.losses``) fails the test until it is placed.
LAYERS: dict[str, int] = {
    "paths": 0,
    "data": 1,
    "objectives": 2,
    "model": 2,
    "decoding": 3,
    "metrics": 4,  # validation, generation, references
    "training": 5,
    "experiments": 6,
    "analysis": 7,
    "studies": 8,
    "explorer": 9,
    "bench": 9,
    "cli": 10,
    "__main__": 10,
}
#: First names that are one unit of their layer: ``python -m entropylab`` (``__main__``) is the command line's.
UNITS: dict[str, str] = {"__main__": "cli"}


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__.py``)."""
    modules = {}
    for path in sorted((LIB / PACKAGE).rglob("*.py")):
        parts = path.relative_to(LIB).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _deepest_module(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` itself, or the longest dotted prefix of it that is a module (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def _targets(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """The dotted names an import node reaches inside the package (unknown ones kept as written)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        # `from pkg import sub` reaches the module pkg.sub when there is one, else pkg (a name defined in it)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
          and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        names = [node.args[0].value]
    else:
        return []
    found = []
    for name in names:
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            continue
        found.append(_deepest_module(name, modules) or name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules (or unknown ``entropylab.*`` names) it imports, the root excluded."""
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        if module == PACKAGE:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[module] = {t for node in ast.walk(tree) for t in _targets(node, module, is_package, modules)
                         if t not in (PACKAGE, module)}
    return graph


def _top(name: str) -> str:
    """The first name under the package (``entropylab.studies.decoding.grid`` -> ``studies``)."""
    return name.split(".")[1] if name.count(".") else ""


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that points sideways or up, or names a module or package the map does not place."""
    problems = []
    for module in sorted(graph):
        own = _top(module)
        if own not in LAYERS:
            problems.append(f"{module}: package {own!r} has no layer in LAYERS (move it, or place it)")
            continue
        for target in sorted(graph[module]):
            other = _top(target)
            if other not in LAYERS:
                problems.append(f"{module} imports {target}: {other!r} has no layer in LAYERS")
            elif UNITS.get(other, other) != UNITS.get(own, own) and LAYERS[other] >= LAYERS[own]:
                problems.append(f"{module} (layer {LAYERS[own]}, {own}) imports {target} "
                                f"(layer {LAYERS[other]}, {other})")
    return problems


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_every_kind_of_import():
    """The parser resolves relative, in-function, TYPE_CHECKING and import_module imports (on a made-up module)."""
    modules = {"entropylab.a": Path("a"), "entropylab.a.b": Path("b"), "entropylab.c": Path("c"),
               "entropylab.c.d": Path("d")}
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import d\n"
              "def f():\n    from . import b\n    import importlib\n    importlib.import_module('entropylab.c.d')\n"
              "from ..c.d import thing\nimport entropylab.c\nimport numpy\n")
    found = [t for node in ast.walk(ast.parse(source)) for t in _targets(node, "entropylab.a.x", False, modules)]
    assert sorted(found) == ["entropylab.a.b", "entropylab.c", "entropylab.c.d", "entropylab.c.d", "entropylab.c.d"]
    assert find_cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]
    assert layer_violations({"entropylab.data.a": {"entropylab.training.b"}}) == [
        "entropylab.data.a (layer 1, data) imports entropylab.training.b (layer 5, training)"]
    assert layer_violations({"entropylab.explorer.a": {"entropylab.bench.b"}}) == [
        "entropylab.explorer.a (layer 9, explorer) imports entropylab.bench.b (layer 9, bench)"]
    assert layer_violations({"entropylab.__main__": {"entropylab.cli"}, "entropylab.cli": {"entropylab.studies.a"}}) \
        == []
    assert layer_violations({"entropylab.losses": set()})[0].startswith("entropylab.losses: package 'losses'")


def test_every_package_has_a_layer(graph):
    """The map covers the library (a module the map does not place is an error, not a pass)."""
    assert {_top(m) for m in graph} <= set(LAYERS), sorted({_top(m) for m in graph} - set(LAYERS))


def test_no_import_cycle(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles between modules:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_imports_point_down_the_layers(graph):
    problems = layer_violations(graph)
    assert not problems, f"{len(problems)} imports against the layering:\n" + "\n".join(problems)


def test_no_module_over_500_lines():
    long = {name: n for name, path in module_files().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"
