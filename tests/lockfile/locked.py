"""Reading uv.lock and pyproject.toml: the locked versions and the build backend's pins."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "uv.lock"
PYPROJECT = ROOT / "pyproject.toml"
# What builds lull's own wheel; pyproject's [tool.uv] build-constraint-dependencies pins them.
BUILD_BACKEND = ("setuptools", "wheel")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def locked_versions(lock: Path = LOCK) -> dict[str, str]:
    """Every package of the lock (lull itself included), normalised name -> version."""
    return {normalise(p["name"]): p["version"] for p in _toml(lock)["package"]}


def _on_linux(dependency: dict[str, Any]) -> bool:
    """False for a dependency only Windows needs (colorama, pywin32); markers on Python's
    version are kept: the lock serves 3.11 to 3.13."""
    marker = str(dependency.get("marker", ""))
    return not ("win32" in marker and "!=" not in marker)


def _dependencies(package: dict[str, Any], extras: Iterable[str]) -> list[dict[str, Any]]:
    listed = list(package.get("dependencies", []))
    for extra in extras:
        listed += package.get("optional-dependencies", {}).get(extra, [])
    return [d for d in listed if _on_linux(d)]


def direct_runtime(lock: Path = LOCK) -> set[str]:
    """lull's own runtime dependencies on Linux, with the extras they ask for (hiredis)."""
    packages = {normalise(p["name"]): p for p in _toml(lock)["package"]}
    names = set()
    for dependency in _dependencies(packages["lull"], ()):
        names.add(normalise(dependency["name"]))
        optional = packages[normalise(dependency["name"])].get("optional-dependencies", {})
        for extra in dependency.get("extra", []):
            names |= {normalise(d["name"]) for d in optional.get(extra, []) if _on_linux(d)}
    return names


def runtime_packages(lock: Path = LOCK) -> set[str]:
    """Every package a production install on Linux may hold: lull's dependencies and extras,
    transitively, without the dev extra (some only on older Pythons: async-timeout)."""
    packages = {normalise(p["name"]): p for p in _toml(lock)["package"]}
    seen: set[str] = set()
    todo: list[tuple[str, list[str]]] = [("lull", [])]
    while todo:
        name, extras = todo.pop()
        key = f"{name}[{','.join(extras)}]"
        if key in seen:
            continue
        seen.add(key)
        for dependency in _dependencies(packages[name], extras):
            todo.append((normalise(dependency["name"]), list(dependency.get("extra", []))))
    return {key.split("[", 1)[0] for key in seen} - {"lull"}


def build_pins(pyproject: Path = PYPROJECT) -> dict[str, str]:
    """pyproject's build-constraint-dependencies, normalised name -> pinned version."""
    pins = {}
    for line in _toml(pyproject)["tool"]["uv"]["build-constraint-dependencies"]:
        match = PIN.match(line)
        assert match, f"{line!r} is not a name==version pin"
        pins[normalise(match.group(1))] = match.group(2)
    return pins
