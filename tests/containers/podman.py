"""podman and podman-compose with this host's settings (containers.conf), every call bounded."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONTAINERS_CONF = HERE / "containers.conf"
COMPOSE_FILES = (ROOT / "deploy" / "docker-compose.yml", HERE / "compose.test.yml")
PROJECT = "lull-test"


class CommandFailed(Exception):
    """A podman (or helper) command exited non-zero; carries its output."""


@dataclass(frozen=True)
class Podman:
    """Runs podman and podman-compose; compose_env is what the compose file interpolates."""

    compose_bin: Path
    compose_env: Mapping[str, str]

    def env(self) -> dict[str, str]:
        """The environment of every podman call: the host's, with CONTAINERS_CONF."""
        return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}

    def run(
        self,
        args: Sequence[str],
        timeout_s: float,
        *,
        stdin: bytes | None = None,
        stderr_too: bool = False,
    ) -> str:
        """`podman ARGS`; its stdout (and stderr when stderr_too). Raises CommandFailed with
        the output on failure."""
        return run(["podman", *args], timeout_s, env=self.env(), stdin=stdin, stderr_too=stderr_too)

    def compose(self, args: Sequence[str], timeout_s: float) -> str:
        """`podman-compose -p PROJECT -f deploy/docker-compose.yml -f compose.test.yml ARGS`."""
        files = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
        command = [str(self.compose_bin), "-p", PROJECT, *files, *args]
        # The host's own LULL_* settings must not leak into the stack under test.
        host = {name: value for name, value in self.env().items() if not name.startswith("LULL_")}
        return run(command, timeout_s, env={**host, **self.compose_env})

    def exists(self, image: str) -> bool:
        """Whether the image is in local storage."""
        try:
            self.run(["image", "exists", image], timeout_s=30)
        except CommandFailed:
            return False
        return True

    def image_size_bytes(self, image: str) -> int:
        """The image's size as `podman images` counts it (all layers)."""
        return int(self.run(["image", "inspect", "--format", "{{.Size}}", image], 30).strip())


def run(
    command: Sequence[str],
    timeout_s: float,
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    stderr_too: bool = False,
) -> str:
    """Run a command to completion; stdout (and stderr when stderr_too), or CommandFailed
    with its last output lines."""
    try:
        done = subprocess.run(
            list(command),
            input=stdin,
            capture_output=True,
            env=dict(env) if env is not None else None,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"{' '.join(command[:4])}: no end after {timeout_s:.0f} s") from exc
    out = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace")
        tail = "\n".join((out + err).strip().splitlines()[-25:])
        raise CommandFailed(f"{' '.join(command[:4])} exited {done.returncode}:\n{tail}")
    if stderr_too:
        out += done.stderr.decode(errors="replace")
    return out
