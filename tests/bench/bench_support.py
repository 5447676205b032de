"""What the processor and sender benches share: a dedicated Redis, cores, pacing, verdicts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import orjson
from redis import Redis
from redis.client import Pipeline

from lull.common.event_loop import new_event_loop
from lull.dev.embedded_redis import EmbeddedRedis
from tests.bench.config import BenchConfig
from tests.bench.machine import describe_load
from tests.bench.procs import BenchError, pin
from tests.bench.results import LoadResult, percentile_ms

T = TypeVar("T")
PAGE_ID = "106000000000001"
# A paced writer sends what fell due every tick: fine enough for a steady rate, coarse
# enough that one pipeline per tick carries many entries.
TICK_S = 0.005


@contextlib.contextmanager
def dedicated_redis(config: BenchConfig, prefix: str) -> Iterator[tuple[EmbeddedRedis, Path]]:
    """A redis-server of our own (no AOF) on the load generator's core, and a temp dir."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        tmp = Path(tmp_name)
        store = EmbeddedRedis(tmp / "redis", appendonly=False)
        try:
            store.start()
            assert store.process is not None
            pin(store.process.pid, config.loadgen_cpu)
            yield store, tmp
        finally:
            store.stop()


@contextlib.contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run this process's calling thread on one core for the block, then move it back."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a fresh uvloop loop (as the services do), closing it afterwards."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(make())
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def describe_cores(name: str, config: BenchConfig, placement: str) -> None:
    """The bench's opening lines: where each process runs and how busy the cores are."""
    print(f"{name} bench: {placement}", flush=True)
    if config.shared_core:
        print("  WARNING: one core only: every process shares it", flush=True)
    print("  " + describe_load({config.server_cpu, config.loadgen_cpu}), flush=True)


def messenger_body(users: list[str], mids: list[str], t_ms: int, text: str) -> bytes:
    """A Messenger webhook body with one text message per (user, mid), all at t_ms."""
    items = [
        {
            "sender": {"id": user},
            "recipient": {"id": PAGE_ID},
            "timestamp": t_ms,
            "message": {"mid": mid, "text": text},
        }
        for user, mid in zip(users, mids, strict=True)
    ]
    return orjson.dumps(
        {"object": "page", "entry": [{"id": PAGE_ID, "time": t_ms, "messaging": items}]}
    )


def redis_now_ms(client: Redis) -> int:
    """The Redis clock, the one every script uses."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def paced(
    client: Redis,
    rate: float,
    seconds: float,
    add: Callable[[Pipeline, int, int], None],
    every_tick: Callable[[float], None] | None = None,
) -> int:
    """Open loop: call add(pipe, n, now_ms) for entry n at rate per second for seconds,
    one pipeline per tick; every_tick(elapsed_s) runs after each. Returns entries added."""
    sent = 0
    start = time.monotonic()
    limit = int(rate * seconds)
    while sent < limit:
        elapsed = time.monotonic() - start
        if elapsed > seconds + 1.0:
            raise BenchError(f"could not write {rate:.0f} entries/s: {sent} of {limit} written")
        due = min(limit, int(elapsed * rate) + 1)
        if due > sent:
            pipe = client.pipeline(transaction=False)
            now_ms = int(time.time() * 1000)
            for n in range(sent, due):
                add(pipe, n, now_ms)
            pipe.execute()
            sent = due
        if every_tick is not None:
            every_tick(elapsed)
        time.sleep(max(0.0, start + (int(elapsed / TICK_S) + 1) * TICK_S - time.monotonic()))
    return sent


def latency_result(
    generator: str, elapsed_s: float, values_ms: list[float], rate: float | None
) -> LoadResult:
    """A LoadResult of delays in ms (p50, p99), for the report's latency column."""
    ordered = sorted(v / 1000 for v in values_ms)
    return LoadResult(
        generator=generator,
        elapsed_s=elapsed_s,
        ok=len(values_ms),
        not_ok=0,
        errors=0,
        abandoned=0,
        p50_ms=percentile_ms(ordered, 0.50),
        p99_ms=percentile_ms(ordered, 0.99),
        target_rate=rate,
    )


def throughput_result(generator: str, elapsed_s: float, done: int) -> LoadResult:
    """A LoadResult of a closed-loop count (no latency measured: NaN)."""
    nan = float("nan")
    return LoadResult(generator, elapsed_s, done, 0, 0, 0, nan, nan)


def verdict(text: str, passed: bool) -> str:
    """One report line: the figure beside its target, flagged when missed."""
    return text + ("" if passed else "  MISSED")


def flush_all(client: Redis) -> None:
    """Empty the dedicated Redis (ours alone), synchronously, so memory figures settle."""
    client.flushall()  # synchronous: lazyfree-lazy-user-flush is off by default
