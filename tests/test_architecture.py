"""The package structure holds: dependencies point one way, dynamic imports included.

Read from the source with ast (nothing is imported), module by module, by the names they
are installed under (lull.common.store.keys for common/store/keys.py; lull/cli.py is lull.cli, the
package "cli"). A runtime module is one a service image carries: every package but the dev
tooling's; those must never import dev tooling, which tests, benches and `lull dev` /
`lull fake-graph` use instead. A service never imports the operator tools (ops) nor another
service, and common imports no other package: the `lull` command (lull/cli.py) is the one
place that knows them all. An import by name at run time (importlib.import_module,
__import__, importlib.resources.files) counts as an import: of the module its string names,
or, when it is given a variable (a dispatch table), of every project module the file names
in a string.

The Redis schema has one home, the store (common/store/): no module outside it calls a
script or builds a key other than a stream's name, every Lua script is in its lua/, and the
scripts read the Redis clock through one clock_ms.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("common", "ingest", "processor", "sender", "ops")
# The `lull` command: above every package; it names dev tooling too, and says when a
# service image leaves it out.
COMMAND = ("cli",)
SERVICES = ("ingest", "processor", "sender")
DEV = ("dev",)
# Calls that import a module named by their first argument.
DYNAMIC_IMPORTS = frozenset({"import_module", "__import__", "files"})


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    if package == "cli":
        yield "lull.cli", ROOT / "lull" / "cli.py"
        return
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("lull", *(parts[:-1] if parts[-1] == "__init__" else parts)))
        yield name, path


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules path imports (at any depth: lazy and dynamic imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif (target := _dynamic_import(node)) is not None:
            names = [target] if isinstance(target, str) else _strings(tree)
            assert names or isinstance(target, ast.Name), (
                f"{path.name}: an import by a computed name the test cannot follow"
            )
        found.update(name for name in names if name in known)
    return found


def _dynamic_import(node: ast.AST) -> str | ast.expr | None:
    """The argument of an import by name: the name itself when it is a literal."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if called not in DYNAMIC_IMPORTS:
        return None
    argument = node.args[0]
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value
    return argument


def _strings(tree: ast.AST) -> list[str]:
    """Every string literal of a module (a dispatch table's module names among them)."""
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _package(module: str) -> str:
    """lull.common.store.keys -> common"""
    return module.split(".")[1]


def _graph() -> dict[str, set[str]]:
    modules = dict(m for package in (*RUNTIME, *COMMAND, *DEV) for m in _modules(package))
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def _imports_between(forbidden: Callable[[str, str], bool]) -> list[tuple[str, str]]:
    """Every (module, imported module) whose packages forbidden(from, to) refuses."""
    return sorted(
        (module, target)
        for module, targets in _graph().items()
        for target in targets
        if forbidden(_package(module), _package(target))
    )


def test_runtime_packages_do_not_import_dev_tooling() -> None:
    assert _imports_between(lambda source, target: source in RUNTIME and target in DEV) == []


def test_services_do_not_import_the_operator_tools() -> None:
    assert _imports_between(lambda source, target: source in SERVICES and target == "ops") == []


def test_services_do_not_import_each_other() -> None:
    # What two services share (the reply model, the access tokens) lives in common.
    assert (
        _imports_between(
            lambda source, target: source in SERVICES and target in SERVICES and source != target
        )
        == []
    )


def test_common_imports_no_other_package() -> None:
    assert _imports_between(lambda source, target: source == "common" and target != "common") == []


def test_the_command_line_dispatch_counts_as_imports() -> None:
    graph = _graph()
    assert {"lull.ingest.service", "lull.ops.stats_cli", "lull.dev.runner"} <= graph["lull.cli"]


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


# The store (common/store/) owns every key, script and byte layout. Outside it a Keys is
# asked only for the names of streams (the consumer loop's transport) and shards.
STORE = "lull.common.store"
STREAM_NAMES = frozenset(
    {
        "inbound",
        "all_inbound",
        "inbound_streams",
        "dead",
        "outbound",
        "all_outbound",
        "arrivals",
        "shard_of",
        "shard_of_outbound",
    }
)
SCRIPTS = "lull.common.store.scripts"


def _key_builds(path: Path) -> list[str]:
    """Calls like keys.history(...) / self._keys.pause(...) of a key that is no stream's."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
        if name.lstrip("_") == "keys" and node.func.attr not in STREAM_NAMES:
            found.append(f"{path.name}: keys.{node.func.attr}")
    return found


def test_no_module_outside_the_store_builds_a_key_or_calls_a_script() -> None:
    modules = dict(m for package in (*RUNTIME, *COMMAND, *DEV) for m in _modules(package))
    outside = {name: path for name, path in modules.items() if not name.startswith(STORE)}
    graph = _graph()
    assert sorted(name for name in outside if SCRIPTS in graph[name]) == []
    assert [build for path in outside.values() for build in _key_builds(path)] == []
    scripts = sorted(
        path.relative_to(ROOT).as_posix()
        for package in (*RUNTIME, *DEV)
        for path in (ROOT / package).rglob("*.lua")
    )
    assert scripts, "no Lua script found"
    assert [s for s in scripts if not s.startswith("common/store/lua/")] == []


def test_one_clock_for_the_scripts() -> None:
    """Redis TIME to ms is clock.lua's clock_ms; rate_limit.lua reads µs, not ms."""
    readers = sorted(
        path.name
        for path in (ROOT / "common" / "store" / "lua").glob("*.lua")
        if "redis.call('TIME')" in path.read_text(encoding="utf-8")
    )
    assert readers == ["clock.lua", "rate_limit.lua"]


def test_the_key_check_finds_a_key_built_outside(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f(keys, c):\n    return keys.history(c), keys.outbound(0)\n")
    assert _key_builds(module) == ["m.py: keys.history"]
