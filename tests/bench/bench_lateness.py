"""Close lateness of one processor replica with 10,000 windows open under a steady load.

A real replica (`python -m processor`: consumer and closer on one loop) runs on the server
core. This script writes one-message bodies at RATE per second, each from a new user, so
every body opens a window whose deadline is its event time + WINDOW_MS: after WINDOW_MS
there are RATE * WINDOW_MS / 1000 windows open, deadlines spread evenly over WINDOW_MS,
and windows fall due at RATE per second while RATE events per second arrive.

Lateness is measured per batch, exactly: closed_at (Redis clock at the close) minus the
deadline, event_time + WINDOW_MS (one message per window; no clamp applies, the lateness
and skew limits are far above any delay here). Only windows whose deadline falls in the
MEASURE_S after the ramp count. The replica's own histogram
(lull_processor_close_lateness_ms) is read over the same span as a cross-check.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from redis.client import Pipeline

from lull.common.store.keys import Keys
from lull.dev.embedded_redis import free_port
from tests.bench.bench_support import latency_result, messenger_body, paced
from tests.bench.config import BenchConfig
from tests.bench.machine import sample, shares
from tests.bench.procs import BenchError, pinned, python_module, serving
from tests.bench.results import LoadResult

NAMESPACE = "late"
RATE = 4_000
WINDOW_MS = 2_500
RAMP_S = WINDOW_MS / 1000 + 0.5
MEASURE_S = 4.0
SETTLE_TIMEOUT_S = 5.0
READ_CHUNK = 5_000
HISTOGRAM = "lull_processor_close_lateness_ms"
WITHIN_MS = 10.0


@dataclass
class Lateness:
    """What the phase measured."""

    result: LoadResult
    """Closed-window lateness in ms (p50, p99) at target_rate events/s."""
    open_windows: list[int] = field(default_factory=list)
    """Open windows sampled during the measured span."""
    max_backlog: int = 0
    """Most inbound entries not yet read by the replica at any sample."""
    processor_share: float = 0.0
    """The replica's share of its core during the measured span."""
    other_cores: float = 0.0
    histogram_within: float = float("nan")
    """Fraction of the histogram's observations <= WITHIN_MS over the span."""
    histogram_count: int = 0

    def line(self) -> str:
        """The verdict text (without the target)."""
        low, high = min(self.open_windows, default=0), max(self.open_windows, default=0)
        return (
            f"close lateness, {low:,}-{high:,} windows open (deadlines spread over "
            f"{WINDOW_MS / 1000:g} s), {RATE:,} events/s in: p50 {self.result.p50_ms:.0f} ms, "
            f"p99 {self.result.p99_ms:.0f} ms over {self.result.ok:,} windows; histogram "
            f"{self.histogram_within:.1%} of {self.histogram_count:,} closes <= {WITHIN_MS:g} ms"
        )


def measure_lateness(
    config: BenchConfig, url: str, client: Redis, redis_pid: int, tmp: Path
) -> Lateness:
    """Run the replica, write the load, read every batch back and measure."""
    keys = Keys(NAMESPACE)
    port = free_port()
    env = {
        "LULL_REDIS_URL": url,
        "LULL_NAMESPACE": NAMESPACE,
        "LULL_WINDOW_MS": str(WINDOW_MS),
        "LULL_MAX_WAIT_MS": "60000",
        "LULL_MAX_LATENESS_MS": "60000",
        "LULL_PROCESSOR_METRICS_PORT": str(port),
        "LULL_LOG_FORMAT": "json",
        "LULL_LOG_LEVEL": "warning",
    }
    argv = pinned(config.server_cpu, python_module("lull.processor"))
    with serving(argv, env, port, tmp / "lull.processor.log") as process:
        found = _load(config, client, keys, port, [process.pid, redis_pid])
        start_ms, end_ms = found.span_ms
        _settle(client, keys, end_ms)
        found.lateness.histogram_within, found.lateness.histogram_count = _histogram_delta(
            found.histogram_before, _scrape(port)
        )
    late_ms = _batch_lateness(client, keys, start_ms, end_ms)
    found.lateness.result = latency_result("closer", MEASURE_S, late_ms, float(RATE))
    print(f"  {found.lateness.line()}", flush=True)
    print(
        f"    replica {found.lateness.processor_share:.0%} of its core busy, other processes "
        f"{found.lateness.other_cores:.2f} core; inbound backlog at most "
        f"{found.lateness.max_backlog:,} entries",
        flush=True,
    )
    return found.lateness


@dataclass
class _Found:
    lateness: Lateness
    span_ms: tuple[int, int]
    histogram_before: dict[float, float]


def _load(config: BenchConfig, client: Redis, keys: Keys, port: int, pids: list[int]) -> _Found:
    cpus = {config.server_cpu, config.loadgen_cpu}
    lateness = Lateness(result=latency_result("closer", 0.0, [], float(RATE)))
    state: dict[str, Any] = {"next_sample": RAMP_S, "before": None, "histogram": {}}
    inbound = keys.inbound()
    due = keys.due(0)

    def add(pipe: Pipeline, n: int, now_ms: int) -> None:
        body = messenger_body([f"late{n}"], [f"m_late_{n:08d}"], now_ms, "is anyone there?")
        pipe.xadd(inbound, {"body": body, "received_at": now_ms, "sig": "ok"})

    def every_tick(elapsed_s: float) -> None:
        if elapsed_s < state["next_sample"]:
            return
        if state["before"] is None:
            state["before"] = sample(cpus, pids[0], pids[1:])
            state["histogram"] = _scrape(port)
        state["next_sample"] = elapsed_s + 0.25
        lateness.open_windows.append(int(client.zcard(due)))
        groups = client.xinfo_groups(inbound)
        lateness.max_backlog = max([lateness.max_backlog, *(int(g["lag"] or 0) for g in groups)])

    start_ms = int(time.time() * 1000)
    paced(client, RATE, RAMP_S + MEASURE_S, add, every_tick)
    if state["before"] is None:
        raise BenchError("the load ended before the measured span began")
    lateness.processor_share, lateness.other_cores = shares(
        state["before"], sample(cpus, pids[0], pids[1:])
    )
    span = (start_ms + int(RAMP_S * 1000), start_ms + int((RAMP_S + MEASURE_S) * 1000))
    return _Found(lateness, span, state["histogram"])


def _settle(client: Redis, keys: Keys, end_ms: int) -> None:
    """Wait until every window due by end_ms is closed (all of them are read by then)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        inbound = client.xinfo_groups(keys.inbound())
        unread = sum(int(g["lag"] or 0) + int(g["pending"]) for g in inbound)
        if unread == 0 and client.zcount(keys.due(0), "-inf", end_ms) == 0:
            return
        if time.monotonic() > deadline:
            raise BenchError(
                f"windows due by the end of the load still open after {SETTLE_TIMEOUT_S} s"
            )
        time.sleep(0.05)


def _batch_lateness(client: Redis, keys: Keys, start_ms: int, end_ms: int) -> list[float]:
    """closed_at - deadline of each batch whose deadline lies in [start_ms, end_ms]."""
    late: list[float] = []
    cursor = "-"
    for _ in range(1000):
        rows = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            client.xrange(keys.outbound(0), min=cursor, max="+", count=READ_CHUNK),
        )
        for _id, fields in rows:
            batch = orjson.loads(fields[b"batch"])
            if len(batch["messages"]) != 1:
                raise BenchError(f"batch {batch['batch_id']} has {len(batch['messages'])} messages")
            deadline = batch["messages"][0]["event_time"] + WINDOW_MS
            if start_ms <= deadline <= end_ms:
                if batch["closed_at"] < deadline:
                    raise BenchError(f"batch {batch['batch_id']} closed before its deadline")
                late.append(float(batch["closed_at"] - deadline))
        if len(rows) < READ_CHUNK:
            break
        cursor = "(" + rows[-1][0].decode()
    expected = RATE * MEASURE_S
    if len(late) < 0.95 * expected:
        raise BenchError(
            f"{len(late)} windows fell due in the measured span, {expected:.0f} expected"
        )
    return late


def _scrape(port: int) -> dict[float, float]:
    """The close-lateness histogram's cumulative buckets: le -> count."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError as exc:
        raise BenchError(f"the processor's /metrics did not answer: {exc}") from exc
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == HISTOGRAM:
            for s in family.samples:
                if s.name == HISTOGRAM + "_bucket":
                    buckets[float(s.labels["le"])] = s.value
    return buckets


def _histogram_delta(before: dict[float, float], after: dict[float, float]) -> tuple[float, int]:
    """(fraction of observations <= WITHIN_MS, observations) between two scrapes."""
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    within = after.get(WITHIN_MS, 0.0) - before.get(WITHIN_MS, 0.0)
    return (within / total if total else float("nan")), int(total)
