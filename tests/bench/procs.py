"""Child processes pinned to one core with taskset, always stopped on the way out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from lull.dev.embedded_redis import port_answers, stop_process

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class BenchError(RuntimeError):
    """The bench could not measure what it claims to: the message says why."""


def pinned(cpu: int, argv: list[str]) -> list[str]:
    """argv run by taskset on one core."""
    return ["taskset", "-c", str(cpu), *argv]


def pin(pid: int, cpu: int) -> None:
    """Move a running process, all its threads, to one core."""
    subprocess.run(
        ["taskset", "-a", "-cp", str(cpu), str(pid)], check=True, stdout=subprocess.DEVNULL
    )


def python_module(module: str) -> list[str]:
    """argv that runs `python -m module` with this interpreter."""
    return [sys.executable, "-m", module]


@contextmanager
def serving(
    argv: list[str], env: Mapping[str, str], port: int, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server, wait until port accepts connections, stop it when the block ends."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, env={**os.environ, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_answers("127.0.0.1", port, 0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise BenchError(f"{' '.join(argv)} did not start listening on {port}:\n{tail}")
            time.sleep(0.05)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process is still there after STOP_TIMEOUT_S."""
    stop_process(process, STOP_TIMEOUT_S)
