"""How busy the bench's cores are with other processes: their work skews every figure."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

# Other processes using more than this fraction of a core make a figure suspect.
BUSY_WARNING = 0.10


def _cpu_times() -> dict[int, tuple[int, int]]:
    # /proc/stat "cpuN user nice system idle iowait irq softirq steal guest guest_nice":
    # (idle + iowait, total) in ticks; guest time is already counted in user and nice.
    times: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(f) for f in fields]
            times[int(name[3:])] = (numbers[3] + numbers[4], sum(numbers[:8]))
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
class Sample:
    """CPU seconds used so far: the bench's cores in all, the server, and all of ours."""

    wall_s: float
    cores_busy_s: float
    server_s: float
    ours_s: float


def _process_s(pid: int) -> float:
    # schedstat counts nanoseconds on CPU exactly; /proc/stat ticks are 10 ms samples.
    tasks = Path(f"/proc/{pid}/task").glob("*/schedstat")
    return sum(int(path.read_text().split()[0]) for path in tasks) / 1e9


def sample(cpus: set[int], server_pid: int, helper_pids: list[int]) -> Sample:
    """Read the counters: ours are the server, helpers, this script and its waited-for children."""
    tick_s = 1 / os.sysconf("SC_CLK_TCK")
    times = _cpu_times()
    busy_s = sum(times[cpu][1] - times[cpu][0] for cpu in cpus) * tick_s
    server_s = _process_s(server_pid)
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    ours_s = (
        server_s
        + sum(_process_s(pid) for pid in helper_pids)
        + sum(r.ru_utime + r.ru_stime for r in (me, children))
    )
    return Sample(time.monotonic(), busy_s, server_s, ours_s)


def shares(before: Sample, after: Sample) -> tuple[float, float]:
    """(the server's share of its core, other processes' use in cores) between two samples."""
    wall_s = after.wall_s - before.wall_s
    if wall_s <= 0:
        return 0.0, 0.0
    other_s = (after.cores_busy_s - before.cores_busy_s) - (after.ours_s - before.ours_s)
    return (after.server_s - before.server_s) / wall_s, max(0.0, other_s / wall_s)
