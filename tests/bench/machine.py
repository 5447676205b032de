"""How busy each core is before the bench starts: other work there skews every figure."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

BUSY_WARNING = 0.10


def _cpu_times() -> dict[int, tuple[int, int]]:
    # /proc/stat "cpuN user nice system idle iowait ...": (idle + iowait, total) jiffies.
    times: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(f) for f in fields]
            times[int(name[3:])] = (numbers[3] + numbers[4], sum(numbers))
    return times


def busy_fractions(cpus: set[int], seconds: float = 0.5) -> dict[int, float]:
    """Fraction of each core's time spent not idle over the next seconds."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    fractions: dict[int, float] = {}
    for cpu in sorted(cpus & before.keys() & after.keys()):
        idle = after[cpu][0] - before[cpu][0]
        total = after[cpu][1] - before[cpu][1]
        fractions[cpu] = 1 - idle / total if total else 0.0
    return fractions


def describe_load(cpus: set[int]) -> str:
    """One line saying how busy the bench's cores were, with a warning when they were."""
    fractions = busy_fractions(cpus)
    shown = ", ".join(f"core {cpu} {busy:.0%}" for cpu, busy in fractions.items())
    if any(busy > BUSY_WARNING for busy in fractions.values()):
        return (
            f"WARNING: other work on the bench's cores before start ({shown} busy): noisy figures"
        )
    return f"cores idle before start ({shown} busy)"


@dataclass(frozen=True)
class CoreSample:
    """A core's busy time and one process's CPU time, both in seconds, at one instant."""

    busy_s: float
    total_s: float
    process_s: float


def sample(cpu: int, pid: int) -> CoreSample:
    """Read the core's counters from /proc/stat and the process's from schedstat."""
    idle, total = _cpu_times()[cpu]
    tick_s = 1 / os.sysconf("SC_CLK_TCK")
    process_ns = sum(
        int(path.read_text().split()[0]) for path in Path(f"/proc/{pid}/task").glob("*/schedstat")
    )
    return CoreSample((total - idle) * tick_s, total * tick_s, process_ns / 1e9)


def shares(before: CoreSample, after: CoreSample) -> tuple[float, float]:
    """(the process's share of the core, everything else's share) between two samples."""
    total = after.total_s - before.total_s
    if total <= 0:
        return 0.0, 0.0
    own = (after.process_s - before.process_s) / total
    return own, max(0.0, (after.busy_s - before.busy_s) / total - own)
