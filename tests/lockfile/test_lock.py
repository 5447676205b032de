"""Every install comes from uv.lock: the lock matches pyproject, the build backend is pinned to
the locked versions, and no install step of make, CI or the image goes around the lock."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.lockfile.locked import (
    BUILD_BACKEND,
    ROOT,
    build_pins,
    direct_runtime,
    locked_versions,
)

UV = ROOT / ".uv" / "bin" / "uv"
# Where installs happen: a line that installs must go through a lock (uv sync --locked, or
# --frozen on the lock test-lowest just made) or a hash-checked requirements file
# (pip --require-hashes).
INSTALLERS = [ROOT / "Makefile", ROOT / "Dockerfile", ROOT / ".ci" / "run"]
INSTALLERS += sorted((ROOT / "tests" / "containers").glob("*.py"))
INSTALL = re.compile(r"\b(pip\"?,?\s+\"?install|uv\"?\s+(sync|pip\s+install)|pip-sync)\b")


def test_the_lock_matches_pyproject() -> None:
    # --locked fails when pyproject.toml changed without `make lock`; --offline: no index is
    # asked (the lock's recorded requirements are compared).
    result = subprocess.run(
        [str(UV), "lock", "--locked", "--offline"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_build_backend_is_pinned_to_the_locked_versions() -> None:
    locked = locked_versions()
    assert build_pins() == {name: locked[name] for name in BUILD_BACKEND}


def test_every_direct_dependency_is_locked_for_linux() -> None:
    locked = locked_versions()
    assert direct_runtime() <= set(locked)
    assert locked["lull"] == "0.2.0"


def install_lines() -> list[tuple[Path, str]]:
    found = []
    for path in INSTALLERS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if INSTALL.search(line) and not line.lstrip().startswith("#"):
                found.append((path, line.strip()))
    return found


def test_every_install_step_goes_through_the_lock_or_hashes() -> None:
    lines = install_lines()
    assert len(lines) >= 4, lines  # the Makefile's and the Dockerfile's, at least
    loose = [
        f"{path.relative_to(ROOT)}: {line}"
        for path, line in lines
        if not {"--locked", "--frozen", "--require-hashes"} & set(line.split())
    ]
    assert loose == []
