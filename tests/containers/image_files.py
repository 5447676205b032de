"""What the production image may not hold, checked against its file list.

The forbidden paths come from two lists, each kept in one place:
- deploy/image/dev-only.txt: dev and test tooling inside lull's packages (the Dockerfile
  leaves them out of the production wheel);
- pyproject.toml's `dev` extra: test runners, linters and fakes, as installed distributions.
Plus the repository's tests and the build stage's leftovers (source tree, wheels).
"""

from __future__ import annotations

import re
import subprocess
import tarfile
import tomllib
from collections.abc import Iterable
from pathlib import PurePosixPath

from tests.containers.podman import ROOT, Podman
from tests.deploy.deploy_files import dev_only_paths

# Top-level directories of the image that only the build stage has.
BUILD_LEFTOVERS = ("src", "wheels", "opt/pip", "opt/uv", "opt/lull-dev")
# A module of lull that must be there: proves the listing reached site-packages.
EXPECTED = "lull/cli.py"
PACKAGE = "lull"
EXPORT_TIMEOUT_S = 300
SITE_PACKAGES = "site-packages/"
COMPILED = re.compile(r"(.*?)__pycache__/([^/.]+)\.[^/]+\.pyc")
REQUIREMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dev_distributions() -> set[str]:
    """The distributions of pyproject.toml's `dev` extra, normalised."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = set()
    for requirement in project["optional-dependencies"]["dev"]:
        match = REQUIREMENT_NAME.match(requirement)
        assert match, requirement
        names.add(normalise(match.group(0)))
    return names


def image_files(podman: Podman, image: str) -> list[str]:
    """Every path in the image, as `podman export` of a container of it lists them."""
    container = podman.run(["create", image], 60).strip()
    try:
        command = ["podman", "export", container]
        with subprocess.Popen(command, stdout=subprocess.PIPE, env=podman.env()) as export:
            assert export.stdout is not None
            with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
                names = [member.name.removeprefix("./") for member in tar]
            export.wait(timeout=EXPORT_TIMEOUT_S)
    finally:
        podman.run(["rm", "--force", container], 60)
    return names


def as_source(path: str) -> str:
    """The source file a compiled module comes from (pkg/__pycache__/m.cpython-311.pyc ->
    pkg/m.py); other paths unchanged."""
    match = COMPILED.fullmatch(path)
    return f"{match.group(1)}{match.group(2)}.py" if match else path


def problems(paths: Iterable[str]) -> list[str]:
    """What in this file list should not be in the production image."""
    dev_paths = dev_only_paths()
    dev_names = dev_distributions()
    found: list[str] = []
    seen_expected = False
    for path in paths:
        parts = PurePosixPath(path).parts
        if any(path == left or path.startswith(f"{left}/") for left in BUILD_LEFTOVERS):
            found.append(f"{path}: left over from the build stage")
        if SITE_PACKAGES not in path:
            continue
        inside = as_source(path.split(SITE_PACKAGES, 1)[1])
        seen_expected = seen_expected or inside == EXPECTED
        # The source folders are installed under lull/ (dev/x.py is lull/dev/x.py).
        source = inside.removeprefix(f"{PACKAGE}/")
        if any(source == dev or source.startswith(f"{dev}/") for dev in dev_paths):
            found.append(f"{path}: dev-only (deploy/image/dev-only.txt)")
        if inside.split("/")[0] == "tests":
            found.append(f"{path}: the test suite")
        top = parts[parts.index("site-packages") + 1] if len(parts) > 1 else ""
        if top.endswith(".dist-info") and inside == top:
            name = normalise(top.removesuffix(".dist-info").rsplit("-", 1)[0])
            if name in dev_names:
                found.append(f"{path}: a dev dependency (pyproject.toml [dev])")
    if not seen_expected:
        found.append(f"no site-packages/{EXPECTED}: the listing missed lull's install")
    return found
