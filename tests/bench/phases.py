"""The three kinds of load phase, each run by the generator the configuration chose."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.bench.config import BenchConfig
from tests.bench.payload import messenger_payload
from tests.bench.procs import ROOT, BenchError, pinned, python_module
from tests.bench.results import LoadResult
from tests.bench.wrk import run_wrk


class Phases:
    """Warm-up, closed-loop maximum, open-loop latency against a server on a port."""

    def __init__(self, config: BenchConfig, wrk: str | None, tmp: Path) -> None:
        self._config = config
        self._wrk = wrk
        self._tmp = tmp

    def warm_up(self, port: int) -> LoadResult:
        """A short closed loop: connections, Redis pools and caches all warm."""
        return self._python(port, self._config.warmup_seconds, None)

    def peak(self, port: int) -> LoadResult:
        """One closed-loop round with wrk when present, else with the Python generator."""
        if self._wrk is None:
            return self._python(port, self._config.round_seconds, None)
        return run_wrk(
            self._wrk,
            messenger_payload(),
            port,
            connections=self._config.connections,
            seconds=self._config.round_seconds,
            cpu=self._config.loadgen_cpu,
            tmp=self._tmp,
        )

    def latency(self, port: int, rate: float) -> LoadResult:
        """Open loop at a fixed rate: only the Python generator can hold one."""
        return self._python(port, self._config.latency_seconds, rate)

    def _python(self, port: int, seconds: float, rate: float | None) -> LoadResult:
        argv = [
            *python_module("tests.bench.loadgen"),
            "closed" if rate is None else "open",
            "--port", str(port),
            "--connections", str(self._config.connections),
            "--seconds", f"{seconds:g}",
            *([] if rate is None else ["--rate", f"{rate:.1f}"]),
        ]  # fmt: skip
        done = subprocess.run(
            pinned(self._config.loadgen_cpu, argv),
            capture_output=True,
            cwd=ROOT,
            timeout=seconds + 30,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"load generator failed: {done.stderr.decode(errors='replace')}")
        return LoadResult.from_json(done.stdout.splitlines()[-1])
