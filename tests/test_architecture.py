"""The package structure holds: no import cycles, and the runtime does not import dev tooling.

Read from the source with ast (nothing is imported), module by module, by the names they
are installed under (lull.common.keys for common/keys.py). A runtime module is
one a service image carries: every package but the dev tooling's; those must never import
dev tooling, which tests, benches and `lull dev` / `lull fake-graph` use instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("common", "ingest", "processor", "sender", "ops")
DEV = ("dev",)


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("lull", *(parts[:-1] if parts[-1] == "__init__" else parts)))
        yield name, path


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules path imports (at any depth: lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found.update(name for name in names if name in known)
    return found


def _package(module: str) -> str:
    """lull.common.keys -> common"""
    return module.split(".")[1]


def _graph() -> dict[str, set[str]]:
    modules = dict(m for package in (*RUNTIME, *DEV) for m in _modules(package))
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def test_runtime_packages_do_not_import_dev_tooling() -> None:
    graph = _graph()
    offenders = sorted(
        (module, target)
        for module, targets in graph.items()
        if _package(module) in RUNTIME
        for target in targets
        if _package(target) in DEV
    )
    assert offenders == []


def test_no_import_cycles_between_modules_or_packages() -> None:
    graph = _graph()
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        top = _package(module)
        packages.setdefault(top, set()).update(_package(t) for t in targets)
        packages[top].discard(top)
    for edges in (graph, packages):
        assert _cycle(edges) is None


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
