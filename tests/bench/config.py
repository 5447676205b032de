"""Bench settings: LULL_BENCH_* variables, and the CPU each process is pinned to."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lull.common.env import Env

LOADGENS = ("auto", "wrk", "python")


@dataclass(frozen=True)
class BenchConfig:
    """How long and how hard each phase runs, and where."""

    seconds: float
    """Closed-loop (maximum throughput) time per server, split into rounds."""
    rounds: int
    """Closed-loop rounds per server, alternating servers; the best round counts."""
    latency_seconds: float
    """Length of the open-loop phase at 80% of the maximum."""
    warmup_seconds: float
    connections: int
    loadgen: str
    """auto (wrk when on PATH), wrk or python."""
    server_cpu: int
    """The one core the server under test runs on."""
    loadgen_cpu: int
    """The load generator's core; Redis and this orchestrator share it."""

    @property
    def round_seconds(self) -> float:
        """Length of one closed-loop round."""
        return self.seconds / self.rounds

    @property
    def shared_core(self) -> bool:
        """Only one core: the figures are not comparable with a 2-core run."""
        return self.server_cpu == self.loadgen_cpu

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BenchConfig:
        """Read and validate the LULL_BENCH_* variables."""
        env = Env(os.environ if environ is None else environ)
        seconds = env.integer("LULL_BENCH_SECONDS", 12, minimum=1, maximum=300)
        # On one core the generator shares it with the server: the output says so.
        cpus = sorted(os.sched_getaffinity(0))
        return cls(
            seconds=float(seconds),
            rounds=env.integer("LULL_BENCH_ROUNDS", 3, minimum=1, maximum=10),
            latency_seconds=max(2.0, min(5.0, seconds / 2)),
            warmup_seconds=1.0,
            connections=env.integer("LULL_BENCH_CONNECTIONS", 128, minimum=1, maximum=1024),
            loadgen=env.choice("LULL_BENCH_LOADGEN", "auto", LOADGENS),
            server_cpu=cpus[0],
            loadgen_cpu=cpus[-1],
        )
