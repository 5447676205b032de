"""The host side: may the test run here, and the tools it needs (installed when root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.containers.steps import say

# Debian packages by the command they provide. netavark and aardvark-dns give compose
# networks with name resolution (a service name resolves to all of its replicas).
APT_PACKAGES = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "netavark": "netavark",
    "aardvark-dns": "aardvark-dns",
    "iptables": "iptables",
}
# Where Debian puts the two network helpers: not on PATH.
HELPER_DIR = Path("/usr/lib/podman")
APT_TIMEOUT_S = 900


def why_not() -> str | None:
    """Why the container test cannot run on this host, or None when it can try."""
    if os.geteuid() != 0:
        return "not root (podman builds, debootstrap and apt-get need root here)"
    if shutil.which("apt-get") is None and shutil.which("podman") is None:
        return "no apt-get to install podman and no podman"
    return None


def missing_commands() -> list[str]:
    """The commands of APT_PACKAGES that are not installed."""
    missing = []
    for command in APT_PACKAGES:
        helper = HELPER_DIR / command
        if shutil.which(command) is None and not helper.exists():
            missing.append(command)
    return missing


def install_tools(venv_bin: Path) -> None:
    """apt-get the missing commands; podman-compose comes with the dev extra (uv.lock)."""
    missing = missing_commands()
    if missing:
        packages = [APT_PACKAGES[command] for command in missing]
        say(f"apt-get install {' '.join(packages)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=APT_TIMEOUT_S)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            check=True,
            env=env,
            timeout=APT_TIMEOUT_S,
            stdout=subprocess.DEVNULL,
        )
    else:
        say("podman, runc, debootstrap, netavark, aardvark-dns, iptables: installed already")
    if not (venv_bin / "podman-compose").exists():
        raise SystemExit(
            f"no podman-compose in {venv_bin}: `make containers` installs it (uv.lock)"
        )


def venv_bin() -> Path:
    """The bin directory of the interpreter that runs this (make's .venv)."""
    return Path(sys.executable).parent
