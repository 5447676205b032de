"""The image file-list rules of `make containers`, on made-up lists (no podman needed)."""

from __future__ import annotations

from tests.containers.image_files import problems

SITE = "opt/lull/lib/python3.11/site-packages"
CLEAN = [
    "usr/bin/python3.11",
    f"{SITE}/lull/cli.py",
    f"{SITE}/lull/sender/graph.py",
    f"{SITE}/lull/sender/__pycache__/graph.cpython-311.pyc",
    f"{SITE}/lull/processor/lua/window_add.lua",
    f"{SITE}/redis-5.0.0.dist-info",
    f"{SITE}/redis-5.0.0.dist-info/RECORD",
    f"{SITE}/lull-0.2.0.dist-info",
]


def test_a_production_list_passes() -> None:
    assert problems(CLEAN) == []


def test_dev_tools_are_found_as_source_and_compiled() -> None:
    found = problems(
        [
            *CLEAN,
            f"{SITE}/lull/dev/fake_graph.py",
            f"{SITE}/lull/dev/__pycache__/embedded_redis.cpython-311.pyc",
            f"{SITE}/lull/dev",
        ]
    )
    assert len(found) == 3
    assert all("dev-only" in line for line in found)
    # A module merely named like a dev folder is not one.
    assert problems([*CLEAN, f"{SITE}/lull/ops/dev_notes.py", f"{SITE}/lull/devices.py"]) == []


def test_dev_dependencies_are_found_by_distribution_name() -> None:
    found = problems(
        [*CLEAN, f"{SITE}/pytest-8.3.0.dist-info", f"{SITE}/PyYAML-6.0.2.dist-info", f"{SITE}/ruff"]
    )
    assert [line.split(":")[0] for line in found] == [
        f"{SITE}/pytest-8.3.0.dist-info",
        f"{SITE}/PyYAML-6.0.2.dist-info",
    ]


def test_tests_and_build_leftovers_are_found() -> None:
    found = problems([*CLEAN, f"{SITE}/tests/conftest.py", "src/pyproject.toml", "wheels"])
    assert len(found) == 3


def test_a_list_without_lull_fails() -> None:
    # An empty or wrong listing must not pass as "nothing forbidden".
    assert problems(["usr/bin/python3.11"]) != []
