"""One replica slot of the stack: a real child process that chaos may kill, stop and restart.

Every start appends to the slot's log file, so a failing run shows what each process of the
slot said across its restarts. A process that exits without the harness killing it is a
crash, and the run reports it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lull.dev.embedded_redis import port_answers, stop_process

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 10.0
POLL_S = 0.05
LOG_TAIL_CHARS = 3000


def lull_argv(*words: str) -> list[str]:
    """argv that runs `lull <words>` with this interpreter (no dependency on PATH)."""
    return [sys.executable, "-m", "lull.cli", *words]


@dataclass
class Service:
    """A restartable child process; `port` answers once the process is serving."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)
    crashes: list[int] = field(default_factory=list, init=False)
    """Exit codes of processes of this slot that ended without the harness killing them."""
    stopped: bool = field(default=False, init=False)
    """SIGSTOPped by the harness and not continued yet."""

    @property
    def pid(self) -> int:
        """The running process's pid."""
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def alive(self) -> bool:
        """True while the current process has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start a new process for this slot (the previous one must be gone)."""
        assert not self.alive(), f"{self.name} is still running"
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        self.stopped = False

    async def wait_ready(self, timeout_s: float) -> None:
        """Poll the slot's port until it accepts connections (bounded; the process may die)."""
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(port_answers, "127.0.0.1", self.port, 0.2):
            if not self.alive():
                raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready in {timeout_s} s:\n{self.log_tail()}")
            await asyncio.sleep(POLL_S)

    def check(self) -> None:
        """Record a crash if the process ended on its own (the harness did not kill it)."""
        if self.process is not None and self.process.returncode is None:
            code = self.process.poll()
            if code is not None:
                self.crashes.append(code)

    def kill(self) -> None:
        """SIGKILL the process and reap it (a kill, not a crash)."""
        self.check()
        if self.process is None or self.process.returncode is not None:
            return
        self.process.kill()
        self.process.wait(STOP_TIMEOUT_S)
        self.stopped = False

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its sockets and state but runs no code."""
        os.kill(self.pid, signal.SIGSTOP)
        self.stopped = True

    def thaw(self) -> None:
        """SIGCONT after freeze()."""
        if self.stopped and self.alive():
            os.kill(self.pid, signal.SIGCONT)
        self.stopped = False

    def terminate(self) -> None:
        """SIGTERM (after SIGCONT), SIGKILL if it does not exit within STOP_TIMEOUT_S."""
        self.check()
        if not self.alive():
            return
        assert self.process is not None
        self.thaw()
        stop_process(self.process, STOP_TIMEOUT_S)

    def log_tail(self) -> str:
        """The end of the slot's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return "(no log)"
