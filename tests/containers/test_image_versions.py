"""The image-versus-lock check of `make containers`, on made-up lists (no podman needed)."""

from __future__ import annotations

from tests.containers.image_versions import installed_versions, mismatches
from tests.lockfile.locked import direct_runtime, locked_versions, runtime_packages

SITE = "opt/lull/lib/python3.11/site-packages"


def image_of(versions: dict[str, str]) -> list[str]:
    paths = [f"{SITE}/lull/cli.py"]
    for name, version in versions.items():
        paths += [f"{SITE}/{name}-{version}.dist-info", f"{SITE}/{name}-{version}.dist-info/RECORD"]
    return paths


def test_an_image_installed_from_the_lock_matches() -> None:
    locked = locked_versions()
    runtime = runtime_packages()
    image = image_of({name: locked[name] for name in direct_runtime() | {"lull"}})
    assert mismatches(installed_versions(image), locked, runtime, direct_runtime()) == []


def test_another_version_a_missing_one_and_an_extra_one_are_each_named() -> None:
    locked = locked_versions()
    runtime = runtime_packages()
    versions = {name: locked[name] for name in runtime | {"lull"}}
    versions["redis"] = "0.0.1"
    del versions["orjson"]
    versions["pytest"] = locked["pytest"]
    found = mismatches(installed_versions(image_of(versions)), locked, runtime, direct_runtime())
    assert found == [
        f"orjson: locked at {locked['orjson']}, not installed",
        f"pytest {locked['pytest']}: installed, not a locked runtime dependency",
        f"redis: 0.0.1 installed, {locked['redis']} locked",
    ]


def test_dist_info_names_with_dashes_and_capitals_are_normalised() -> None:
    paths = [f"{SITE}/prometheus_client-0.26.0.dist-info/METADATA", f"{SITE}/PyYAML-6.0.dist-info"]
    assert installed_versions(paths) == {"prometheus-client": "0.26.0", "pyyaml": "6.0"}


def test_the_runtime_set_is_the_direct_dependencies_and_theirs_without_the_dev_extra() -> None:
    direct = {"redis", "hiredis", "aiohttp", "orjson", "structlog", "prometheus-client", "uvloop"}
    assert direct_runtime() == direct | {"rich"}
    runtime = runtime_packages()
    assert direct | {"multidict", "yarl", "async-timeout"} <= runtime  # theirs too
    assert not {"pytest", "mypy", "ruff", "pip", "setuptools", "colorama"} & runtime
