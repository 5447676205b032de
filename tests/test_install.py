"""An installed lull takes one top-level name, `lull`: a user's own `common` package (or
`ops`, `sender` …) lives beside it, and a `python:` bot handler in the same environment can
import both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_installed_lull_lives_beside_a_package_named_common(tmp_path: Path) -> None:
    site = tmp_path / "site"
    # A wheel of this checkout, installed into a folder of its own (dependencies come from
    # the test's environment: only the names lull installs are under test).
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(ROOT)],
        check=True, capture_output=True, timeout=150,
    )  # fmt: skip
    top_level = {p.name for p in site.iterdir() if not p.name.endswith(".dist-info")}
    assert top_level - {"bin", "__pycache__"} == {"lull"}
    user = tmp_path / "user"
    (user / "common").mkdir(parents=True)
    (user / "common" / "__init__.py").write_text("WHO = 'the user'\n")
    check = (
        "import common, lull.common.store.keys, lull.common.store.scripts, lull.cli;"
        "lua = lull.common.store.scripts.read_lua('window_apply');"
        "import lull.common.contract as contract;"
        "schema = contract.schema_text('batch');"
        "print(common.WHO, lull.common.store.keys.__name__, lua.startswith('-- window_apply'),"
        " schema.startswith('{'))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path[:0] = {[str(user), str(site)]!r}; "
         + check],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The Lua scripts and the contract's schemas are installed with the code.
    assert done.stdout.split() == ["the", "user", "lull.common.store.keys", "True", "True"]
