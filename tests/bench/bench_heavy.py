"""Heavy input: an event's Redis time against its conversation's history, and a huge body.

`python -m tests.bench heavy` runs it alone; the processor bench runs it too. The processor
(in this process) on config.server_cpu, redis-server on config.loadgen_cpu. One dedicated
Redis, SLOWLOG on for every command (slowlog-log-slower-than 0), so each script call's own
duration is read from Redis, not guessed from the client.

1. History: HISTORY messages of one user are applied (WindowStore, reads of FILL_CHUNK
   events, as a processor would), windows closing at the cap as they fill. Then PROBES more
   messages of that user and PROBES messages of PROBES new users, one script call each,
   alternating, each the first of a turn (open windows are closed before each pair): the
   median call of each. The new users are the baseline; target: the heavy user's median at
   most twice theirs. The calls that applied the history and the slowest script call of the
   whole phase are printed beside it (before 0.3: calls of 380-901 ms, 4.4-7.9 ms per
   message afterwards). A message that joins an open window also reads and writes the
   window, bounded by the caps, whatever the history: phase 2 shows those calls.
2. One body of BODY messages for one user, through a running processor (consumer and
   closer, LULL_WINDOW_MS=WINDOW_MS), while other users write one message every
   SMALL_EVERY_S: their close lateness (closed_at - opened_at - window; event times at the
   Redis clock, no lateness clamp) beside the same writer with no heavy body (baseline, in
   the same run). Checked: every batch of the heavy user within LULL_MAX_MESSAGES and
   LULL_MAX_BYTES, every message once, in order.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
from prometheus_client import CollectorRegistry
from redis import Redis

from lull.common.env import Env
from lull.common.events import Event
from lull.common.redis_conn import connect
from lull.common.store.keys import Keys
from lull.common.store.windows import WindowStore
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings, window_from_env
from tests.bench.bench_support import (
    PAGE_ID,
    dedicated_redis,
    describe_cores,
    flush_all,
    messenger_body,
    on_cpu,
    redis_now_ms,
    run_async,
    verdict,
)
from tests.bench.config import BenchConfig
from tests.bench.procs import BenchError
from tests.bench.report import Report

HISTORY = 20_000
FILL_CHUNK = 1_000
PROBES = 300
TARGET_RATIO = 2.0
BODY = 10_000
WINDOW_MS = 300
SMALL_EVERY_S = 0.05
BASELINE_S = 3.0
SETTLE_TIMEOUT_S = 60.0
SLOWLOG_LEN = 1_000_000
HEAVY_USER = "7000000000000001"


@dataclass(frozen=True)
class History:
    """Script call durations (µs) around a long history."""

    heavy_median_us: float
    new_median_us: float
    slowest_us: int
    fill_calls: int
    fill_median_us: float
    fill_p99_us: float

    @property
    def ratio(self) -> float:
        """The heavy user's median call over a new user's."""
        return self.heavy_median_us / self.new_median_us

    @property
    def passed(self) -> bool:
        """The heavy user's message costs at most TARGET_RATIO new users' ones."""
        return self.ratio <= TARGET_RATIO

    def line(self) -> str:
        """The report line."""
        return verdict(
            f"history: with {HISTORY:,} messages of one user applied, its next turn's message "
            f"{self.heavy_median_us:.0f} µs of Redis per call (median of {PROBES}) vs a new "
            f"user's {self.new_median_us:.0f} µs: ratio {self.ratio:.2f} (target <= "
            f"{TARGET_RATIO:g}); the {self.fill_calls} calls that applied the {HISTORY:,}: "
            f"median {self.fill_median_us / 1000:.2f} ms, p99 {self.fill_p99_us / 1000:.2f} ms; "
            f"slowest script call of the phase {self.slowest_us / 1000:.2f} ms",
            self.passed,
        )


@dataclass(frozen=True)
class Body:
    """One huge body for one user beside small conversations."""

    batches: int
    largest_batch: int
    largest_batch_bytes: int
    max_messages: int
    max_bytes: int
    slowest_us: int
    baseline_p50_ms: float
    baseline_p99_ms: float
    heavy_p50_ms: float
    heavy_p99_ms: float
    small: int

    def line(self) -> str:
        """The report line."""
        return (
            f"body of {BODY:,} messages for one user: {self.batches} batches, the largest "
            f"{self.largest_batch} messages / {self.largest_batch_bytes:,} B (caps "
            f"{self.max_messages} / {self.max_bytes:,}), all once and in order; slowest "
            f"script call {self.slowest_us / 1000:.2f} ms; other users' close lateness p50 "
            f"{self.heavy_p50_ms:.0f} ms p99 {self.heavy_p99_ms:.0f} ms ({self.small} "
            f"batches) vs p50 {self.baseline_p50_ms:.0f} ms p99 {self.baseline_p99_ms:.0f} ms "
            f"without the body"
        )


def _event(user: str, mid: str, now_ms: int) -> Event:
    raw = {"sender": {"id": user}, "recipient": {"id": PAGE_ID}, "timestamp": now_ms,
           "message": {"mid": mid, "text": "a message of an ordinary length, typed"}}  # fmt: skip
    text = "a message of an ordinary length, typed"
    return Event("messenger", PAGE_ID, user, mid, now_ms, "text", text=text, raw=raw)


def _slowlog_us(client: Redis) -> list[int]:
    """Durations (µs) of the logged script calls, oldest first; the log is then reset."""
    entries = client.slowlog_get(SLOWLOG_LEN)
    client.slowlog_reset()
    return [int(e["duration"]) for e in reversed(entries)
            if bytes(e["command"]).upper().startswith(b"EVALSHA")]  # fmt: skip


def measure_history(config: BenchConfig, url: str, client: Redis) -> History:
    """Phase 1, on an empty dedicated Redis."""
    settings = window_from_env(Env({"LULL_WINDOW_MS": "3600000", "LULL_MAX_WAIT_MS": "3600000"}))
    keys = Keys("history")

    async def run() -> tuple[list[int], list[int], list[int]]:
        store_client = connect(url, timeout_s=30)
        try:
            store = WindowStore(store_client, keys, settings)
            await store.load_scripts()
            now_ms = redis_now_ms(client)
            client.slowlog_reset()
            for start in range(0, HISTORY, FILL_CHUNK):
                events = [(_event(HEAVY_USER, f"m_{n:08d}", now_ms), now_ms)
                          for n in range(start, start + FILL_CHUNK)]  # fmt: skip
                await store.apply_closing(events)
            fill = _slowlog_us(client)
            heavy: list[int] = []
            new: list[int] = []
            for n in range(PROBES):
                # Each probe is the first message of a turn (the earlier windows closed, as
                # the closer would after the user's pause), so both pay for the same window
                # and the difference is what the history costs.
                while (await store.close_due(0, 1000, everything=True)).closed:
                    pass
                _slowlog_us(client)
                await store.apply([(_event(HEAVY_USER, f"probe_{n:06d}", now_ms), now_ms)])
                heavy += _slowlog_us(client)
                await store.apply([(_event(f"71{n:014d}", f"new_{n:06d}", now_ms), now_ms)])
                new += _slowlog_us(client)
            return fill, heavy, new
        finally:
            await store_client.aclose()

    with on_cpu(config.server_cpu):
        fill, heavy, new = run_async(run)
    if len(heavy) != PROBES or len(new) != PROBES:
        raise BenchError(f"SLOWLOG held {len(heavy)} and {len(new)} probe calls, not {PROBES}")
    history = History(
        heavy_median_us=statistics.median(heavy),
        new_median_us=statistics.median(new),
        slowest_us=max(fill + heavy + new),
        fill_calls=len(fill),
        fill_median_us=statistics.median(fill),
        fill_p99_us=_p([float(d) for d in fill], 0.99),
    )
    print(f"  {history.line()}", flush=True)
    return history


def _settings(url: str) -> ProcessorSettings:
    return ProcessorSettings.from_env({
        "LULL_REDIS_URL": url, "LULL_NAMESPACE": "body", "LULL_WINDOW_MS": str(WINDOW_MS),
        "LULL_MAX_LATENESS_MS": "0", "LULL_MAX_SKEW_MS": "0", "LULL_PROCESSOR_METRICS_PORT": "0",
        "LULL_LOG_FORMAT": "json", "LULL_LOG_LEVEL": "warning",
    })  # fmt: skip


def _batches(client: Redis, keys: Keys) -> list[dict[str, Any]]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keys.outbound(0)))
    return [orjson.loads(fields[b"batch"]) for _id, fields in entries]


def _lateness_ms(batches: list[dict[str, Any]]) -> list[float]:
    """closed_at - opened_at - window of each small user's batch (one message at the clock)."""
    return [b["closed_at"] - b["opened_at"] - WINDOW_MS for b in batches
            if b["user_id"] != HEAVY_USER]  # fmt: skip


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def measure_body(config: BenchConfig, url: str, client: Redis) -> Body:
    """Phase 2: a running processor; small writers alone, then beside one huge body."""
    settings = _settings(url)
    keys = Keys("body")
    mids = [f"m_{n:08d}.big" for n in range(BODY)]

    async def write_small(until: float, first: int) -> int:
        n = first
        while time.monotonic() < until:
            now_ms = redis_now_ms(client)
            body = messenger_body([f"72{n:014d}"], [f"small_{n:08d}"], now_ms, "hi")
            client.xadd(keys.inbound(), {"body": body, "received_at": now_ms, "sig": "ok"})
            n += 1
            await asyncio.sleep(SMALL_EVERY_S)
        return n

    async def settle(expected: int) -> None:
        # Polls Redis: the batches come from the processor's own tasks.
        for _ in range(int(SETTLE_TIMEOUT_S / 0.1)):
            if len(_batches(client, keys)) >= expected and not client.zcard(keys.due(0)):
                return
            await asyncio.sleep(0.1)
        raise BenchError(f"fewer than {expected} batches after {SETTLE_TIMEOUT_S:g} s")

    async def run() -> tuple[list[float], list[float], list[int]]:
        processor_client = connect(url, timeout_s=30)
        processor = Processor(processor_client, settings, CollectorRegistry())
        task = asyncio.create_task(processor.run())
        try:
            small = await write_small(time.monotonic() + BASELINE_S, 0)
            await settle(small)
            baseline = _lateness_ms(_batches(client, keys))
            client.delete(keys.outbound(0))
            client.slowlog_reset()
            now_ms = redis_now_ms(client)
            big = messenger_body([HEAVY_USER] * BODY, mids, now_ms, "part of a long paste")
            client.xadd(keys.inbound(), {"body": big, "received_at": now_ms, "sig": "ok"})
            more = await write_small(time.monotonic() + BASELINE_S, small) - small
            expected_big = -(-BODY // settings.window.max_messages)
            await settle(more + expected_big)
            return baseline, _lateness_ms(_batches(client, keys)), _slowlog_us(client)
        finally:
            processor.request_stop()
            await task
            await processor_client.aclose()

    with on_cpu(config.server_cpu):
        baseline, heavy, slow = run_async(run)
    found = _batches(client, keys)
    big = sorted((b for b in found if b["user_id"] == HEAVY_USER), key=lambda b: b["seq"])
    if [m["mid"] for b in big for m in b["messages"]] != mids:
        raise BenchError("the huge body's messages are not all batched once, in order")
    sizes = [sum(len(orjson.dumps(m[f])) for m in b["messages"]
                 for f in ("mid", "kind", "text", "attachments", "raw")) for b in big]  # fmt: skip
    window = settings.window
    if max(len(b["messages"]) for b in big) > window.max_messages or max(sizes) > window.max_bytes:
        raise BenchError("a batch of the huge body passed a cap")
    body = Body(
        batches=len(big),
        largest_batch=max(len(b["messages"]) for b in big),
        largest_batch_bytes=max(sizes),
        max_messages=window.max_messages,
        max_bytes=window.max_bytes,
        slowest_us=max(slow, default=0),
        baseline_p50_ms=_p(baseline, 0.5),
        baseline_p99_ms=_p(baseline, 0.99),
        heavy_p50_ms=_p(heavy, 0.5),
        heavy_p99_ms=_p(heavy, 0.99),
        small=len(heavy),
    )
    print(f"  {body.line()}", flush=True)
    return body


def measure_heavy(config: BenchConfig, url: str, client: Redis) -> tuple[History, Body]:
    """Both phases on one dedicated Redis (emptied between them)."""
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", SLOWLOG_LEN)
    try:
        history = measure_history(config, url, client)
        flush_all(client)
        body = measure_body(config, url, client)
    finally:
        client.config_set("slowlog-log-slower-than", 10_000)
        client.config_set("slowlog-max-len", 128)
    return history, body


def run(config: BenchConfig) -> Report:
    """`python -m tests.bench heavy`: both phases alone."""
    describe_cores(
        "heavy",
        config,
        f"processor on core {config.server_cpu}; redis-server and this script's writers on "
        f"core {config.loadgen_cpu}",
    )
    with (
        dedicated_redis(config, "lull-bench-heavy-") as (store, _tmp),
        Redis.from_url(store.url, socket_timeout=30) as client,
    ):
        history, body = measure_heavy(config, store.url, client)
    return Report("heavy", [], [history.line(), body.line()], history.passed)
