"""The image installs what the lock says: every distribution in the production image's
site-packages at its locked version, lull's direct dependencies all there, nothing else."""

from __future__ import annotations

from collections.abc import Iterable

from tests.lockfile.locked import normalise

SITE_PACKAGES = "site-packages/"
DIST_INFO = ".dist-info"


def installed_versions(paths: Iterable[str]) -> dict[str, str]:
    """Normalised name -> version of every `NAME-VERSION.dist-info` folder in site-packages."""
    found = {}
    for path in paths:
        if SITE_PACKAGES not in path:
            continue
        top = path.split(SITE_PACKAGES, 1)[1].split("/", 1)[0]
        if top.endswith(DIST_INFO):
            name, _, version = top.removesuffix(DIST_INFO).rpartition("-")
            found[normalise(name)] = version
    return found


def mismatches(
    installed: dict[str, str], locked: dict[str, str], allowed: set[str], required: set[str]
) -> list[str]:
    """What differs between the image's distributions and the lock: a required one missing,
    a version other than the locked one, a distribution that is no runtime dependency."""
    found = [
        f"{name}: locked at {locked[name]}, not installed"
        for name in sorted((required | {"lull"}) - set(installed))
    ]
    for name, version in sorted(installed.items()):
        if name not in allowed | {"lull"}:
            found.append(f"{name} {version}: installed, not a locked runtime dependency")
        elif version != locked[name]:
            found.append(f"{name}: {version} installed, {locked[name]} locked")
    return found
