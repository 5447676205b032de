"""The processor: apply rate of one replica, close lateness under load, memory per window.

Placement: the processor under test (in this process for the apply rate, a `python -m
processor` child for the lateness phase) runs on config.server_cpu; redis-server, the
load writer and this script otherwise run on config.loadgen_cpu.

1. Apply rate: the inbound stream is filled with raw Messenger bodies first, then one
   Processor's consumer handles them all (`run_until_idle`, windows stay open) while this
   process sits on the server core. Beside it, the same client pipelines as many EVALSHA
   calls of `return 1` in batches of 100: the ceiling of any one-call-per-event design.
   Once more with an accounts file of BENCH_ACCOUNTS accounts (LULL_ACCOUNTS), the page
   among them: each event carries its account's window settings.
2. Close lateness (bench_lateness): a real replica, windows opened at a steady rate;
   then at low traffic (bench_quiet_lateness): lone button taps and sub-second gaps.
3. Memory per open window (bench_memory): WindowStore.apply straight into Redis.
4. Memory per remembered message id (bench_dedupe): what the dedupe horizon costs.
5. Heavy input (bench_heavy): an event's Redis time after a 20,000-message history, the
   slowest script call, and a 10,000-message body beside other users' close lateness.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis import Redis

from lull.common.log import configure
from lull.common.redis_conn import connect
from lull.common.store.keys import Keys
from lull.processor.app import GROUP, Processor
from lull.processor.settings import ProcessorSettings
from tests.bench.bench_dedupe import Dedupe, measure_dedupe
from tests.bench.bench_heavy import Body, History, measure_heavy
from tests.bench.bench_lateness import Lateness, measure_lateness
from tests.bench.bench_memory import Memory, measure_memory
from tests.bench.bench_quiet_lateness import QuietLateness, measure_quiet_lateness
from tests.bench.bench_support import (
    PAGE_ID,
    dedicated_redis,
    describe_cores,
    flush_all,
    messenger_body,
    on_cpu,
    run_async,
    throughput_result,
    verdict,
)
from tests.bench.config import BenchConfig
from tests.bench.machine import sample
from tests.bench.procs import BenchError
from tests.bench.report import Report, Row

TARGET_EVENTS_PER_S = 20_000
TARGET_LATENESS_P99_MS = 10.0
TARGET_WINDOW_BYTES = 600
APPLY_EVENTS = 50_000
APPLY_USERS = 20_000
BASELINE_BATCH = 100
PREFILL_BATCH = 2_000
HOUR_MS = 3_600_000
# Timing one run of a few seconds; more means the machine is far slower than expected.
APPLY_TIMEOUT_S = 60.0
BENCH_ACCOUNTS = 1_000
# The rate with an accounts file, against the rate without, in the same run.
TARGET_ACCOUNTS_RATIO = 0.9


@dataclass(frozen=True)
class Applied:
    """One apply-rate run: events handled, seconds, and how busy each side was."""

    label: str
    events: int
    elapsed_s: float
    own_cpu: float
    """This process's share of its core while the consumer ran."""
    redis_cpu: float

    @property
    def per_s(self) -> float:
        """Events applied per second."""
        return self.events / self.elapsed_s


def run(config: BenchConfig) -> Report:
    """Every processor figure against its target, in one run on one dedicated Redis."""
    describe_cores(
        "processor",
        config,
        f"processor on core {config.server_cpu}; redis-server, load writer and this script "
        f"on core {config.loadgen_cpu}",
    )
    configure("json", "warning", "bench")
    with dedicated_redis(config, "lull-bench-processor-") as (store, tmp):
        assert store.process is not None
        redis_pid = store.process.pid
        with Redis.from_url(store.url, socket_timeout=10) as client:
            single = _apply_rate(config, store.url, client, redis_pid, per_body=1)
            flush_all(client)
            multi = _apply_rate(config, store.url, client, redis_pid, per_body=10)
            flush_all(client)
            accounts = _apply_rate(
                config, store.url, client, redis_pid, per_body=1,
                accounts_file=_accounts_file(tmp, BENCH_ACCOUNTS),
            )  # fmt: skip
            flush_all(client)
            baseline = _baseline(config, store.url, APPLY_EVENTS)
            flush_all(client)
            lateness = measure_lateness(config, store.url, client, redis_pid, tmp)
            flush_all(client)
            quiet = measure_quiet_lateness(config, store.url, client, tmp)
            flush_all(client)
            memory = measure_memory(config, store.url, client)
            flush_all(client)
            dedupe = measure_dedupe(store.url, client)
            flush_all(client)
            heavy = measure_heavy(config, store.url, client)
    return _report(
        single=single,
        multi=multi,
        accounts=accounts,
        baseline=baseline,
        lateness=lateness,
        quiet=quiet,
        memory=memory,
        dedupe=dedupe,
        heavy=heavy,
    )


def _accounts_file(tmp: Path, count: int) -> Path:
    """An accounts file of count accounts, the bench's page among them; each account's
    windows an hour long (nothing falls due), its other settings its own."""
    path = tmp / "accounts.toml"
    tables = [f'["*"]\nwindow_ms = {HOUR_MS}\nmax_wait_ms = {HOUR_MS}\n']
    ids = [PAGE_ID, *(f"2060000{n:08d}" for n in range(count - 1))]
    for n, account_id in enumerate(ids):
        tables.append(
            f'["{account_id}"]\nplatform = "messenger"\nname = "page {n}"\n'
            f'max_messages = {50 + n % 50}\nflush_on = ["postback"]\n'
        )
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def _settings(url: str, namespace: str, accounts_file: Path | None = None) -> ProcessorSettings:
    # Windows an hour long: nothing falls due, so only applying is timed.
    env = {
        "LULL_REDIS_URL": url,
        "LULL_NAMESPACE": namespace,
        "LULL_WINDOW_MS": str(HOUR_MS),
        "LULL_MAX_WAIT_MS": str(HOUR_MS),
        "LULL_LOG_FORMAT": "json",
        "LULL_LOG_LEVEL": "warning",
    }
    if accounts_file is not None:
        env["LULL_ACCOUNTS"] = str(accounts_file)
    return ProcessorSettings.from_env(env)


def _prefill(client: Redis, stream: str, per_body: int) -> None:
    """APPLY_EVENTS messages from APPLY_USERS users, per_body messages to a body."""
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for first in range(0, APPLY_EVENTS, per_body):
        numbers = range(first, first + per_body)
        users = [f"user{n % APPLY_USERS}" for n in numbers]
        mids = [f"m_{n:08d}.bench.{n % 7919:04d}" for n in numbers]
        body = messenger_body(users, mids, now_ms, f"hello, message {first}")
        pipe.xadd(stream, {"body": body, "received_at": now_ms, "sig": "ok"})
        if len(pipe) >= PREFILL_BATCH:
            pipe.execute()
    pipe.execute()


def _apply_rate(
    config: BenchConfig,
    url: str,
    sync: Redis,
    redis_pid: int,
    per_body: int,
    *,
    accounts_file: Path | None = None,
) -> Applied:
    namespace = f"apply{per_body}{'a' if accounts_file else ''}"
    settings = _settings(url, namespace, accounts_file)
    keys = Keys(namespace, settings.common.shards)
    _prefill(sync, keys.inbound(), per_body)
    cpus = {config.server_cpu, config.loadgen_cpu}

    label = f"{per_body} message{'s' if per_body > 1 else ''}/body"
    if settings.accounts is not None:
        label += f", {len(settings.accounts.by_id):,} accounts (LULL_ACCOUNTS)"

    async def consume() -> Applied:
        client = connect(url, timeout_s=10)
        try:
            processor = Processor(client, settings, CollectorRegistry())
            await processor.start()
            with on_cpu(config.server_cpu):
                before = sample(cpus, redis_pid, [])
                cpu_started = time.process_time()
                try:
                    async with asyncio.timeout(APPLY_TIMEOUT_S):
                        await processor.consumer.run_until_idle()
                except TimeoutError:
                    raise BenchError(
                        f"{APPLY_EVENTS} events not applied in {APPLY_TIMEOUT_S:g} s"
                    ) from None
                after = sample(cpus, redis_pid, [])
                own_s = time.process_time() - cpu_started
            _check_applied(processor)
        finally:
            await client.aclose()
        elapsed = after.wall_s - before.wall_s
        redis_s = after.server_s - before.server_s
        return Applied(label, APPLY_EVENTS, elapsed, own_s / elapsed, redis_s / elapsed)

    applied = run_async(consume)
    _check_consumed(sync, keys.inbound())
    print(
        f"  apply, {label}: {applied.per_s:,.0f} events/s ({APPLY_EVENTS:,} events, "
        f"{APPLY_USERS:,} users, {applied.elapsed_s:.2f} s); processor "
        f"{applied.own_cpu:.0%} of its core busy, redis-server {applied.redis_cpu:.0%}",
        flush=True,
    )
    return applied


def _check_applied(processor: Processor) -> None:
    registry = processor.registry
    applied = sum(
        registry.get_sample_value("lull_processor_applied_total", {"result": name}) or 0.0
        for name in ("opened", "added")
    )
    if int(applied) != APPLY_EVENTS:
        raise BenchError(f"the processor applied {applied:.0f} of {APPLY_EVENTS} events")


def _check_consumed(client: Redis, stream: str) -> None:
    for group in client.xinfo_groups(stream):
        if group["name"] in (GROUP, GROUP.encode()) and (group["pending"] or group["lag"]):
            raise BenchError(f"entries left: pending {group['pending']}, lag {group['lag']}")


def _baseline(config: BenchConfig, url: str, calls: int) -> float:
    """Calls per second of a bare pipelined EVALSHA `return 1` loop on the same client."""

    async def loop() -> float:
        client: aioredis.Redis = connect(url, timeout_s=10)
        try:
            sha = await client.script_load("return 1")
            with on_cpu(config.server_cpu):
                started = time.perf_counter()
                async with asyncio.timeout(APPLY_TIMEOUT_S):
                    for _ in range(calls // BASELINE_BATCH):
                        pipe = client.pipeline(transaction=False)
                        for _ in range(BASELINE_BATCH):
                            pipe.evalsha(sha, 0)
                        await pipe.execute()
                return calls / (time.perf_counter() - started)
        finally:
            await client.aclose()

    rate = run_async(loop)
    print(f"  bare pipelined EVALSHA `return 1`, batches of {BASELINE_BATCH}: {rate:,.0f} calls/s")
    return rate


def _report(
    *,
    single: Applied,
    multi: Applied,
    accounts: Applied,
    baseline: float,
    lateness: Lateness,
    quiet: QuietLateness,
    memory: Memory,
    dedupe: Dedupe,
    heavy: tuple[History, Body],
) -> Report:
    rate_ok = single.per_s >= TARGET_EVENTS_PER_S
    multi_ok = multi.per_s >= TARGET_EVENTS_PER_S
    accounts_ratio = accounts.per_s / single.per_s
    accounts_ok = accounts.per_s >= TARGET_EVENTS_PER_S and accounts_ratio >= TARGET_ACCOUNTS_RATIO
    late_ok = lateness.result.p99_ms <= TARGET_LATENESS_P99_MS
    quiet_ok = max(quiet.tap.p99_ms, quiet.gap.p99_ms) <= TARGET_LATENESS_P99_MS
    memory_ok = memory.beyond_messages <= TARGET_WINDOW_BYTES
    verdicts = [
        verdict(
            f"apply, {single.label}: {single.per_s:,.0f} events/s (target >= "
            f"{TARGET_EVENTS_PER_S:,}); bare pipelined EVALSHA loop {baseline:,.0f} calls/s: "
            f"ratio {single.per_s / baseline:.2f}",
            rate_ok,
        ),
        verdict(
            f"apply, {multi.label}: {multi.per_s:,.0f} events/s (target >= "
            f"{TARGET_EVENTS_PER_S:,}): ratio {multi.per_s / baseline:.2f}",
            multi_ok,
        ),
        verdict(
            f"apply, {accounts.label}: {accounts.per_s:,.0f} events/s, {accounts_ratio:.2f} "
            f"of the rate without (target >= {TARGET_EVENTS_PER_S:,} and >= "
            f"{TARGET_ACCOUNTS_RATIO:g})",
            accounts_ok,
        ),
        verdict(f"{lateness.line()} (target p99 <= {TARGET_LATENESS_P99_MS:g} ms)", late_ok),
        verdict(f"{quiet.line()} (target p99 <= {TARGET_LATENESS_P99_MS:g} ms)", quiet_ok),
        verdict(
            f"memory per open window: {memory.per_window:.0f} B used_memory, "
            f"{memory.beyond_messages:.0f} B beyond the message bytes (target <= "
            f"{TARGET_WINDOW_BYTES})",
            memory_ok,
        ),
        dedupe.line(),
        heavy[0].line(),
        heavy[1].line(),
    ]
    row = Row(
        "processor (events applied; close lateness)",
        throughput_result("in-process consumer", single.elapsed_s, single.events),
        lateness.result,
    )
    return Report(
        "processor",
        [row],
        verdicts,
        rate_ok
        and multi_ok
        and accounts_ok
        and late_ok
        and quiet_ok
        and memory_ok
        and heavy[0].passed,
    )
