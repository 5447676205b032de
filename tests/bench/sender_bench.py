"""The sender: replies per second of one replica, batch age at 80% of it, and rate limits.

Placement: the sender under test (`python -m sender`, LULL_HANDLER=echo) runs on
config.server_cpu; the fake Graph API (`lull fake-graph`, zero latency), redis-server and
this script on config.loadgen_cpu.

1. Throughput: THROUGHPUT_BATCHES batches, one per conversation, wait on the outbound
   stream before the sender starts; replies/s is counted from the delivered hashes, from
   the first finished batch to the last, and checked against the fake's record.
2. Latency: the same sender, batches written open loop at 80% of that rate with closed_at
   = now; each batch's age is the fake's at_ms for its reply minus closed_at.
3. Limits (tests/bench/bench_limits.py): fresh senders with LULL_RATE_GLOBAL=200/s and
   every batch for one account, and with LULL_RATE_PER_USER=10/1s:1 and 10/1s:3 and the
   batches of one conversation; the fake's at_ms of each send gives the first second, the
   busiest second and the steady rate.
4. Slow bot: a fresh sender whose bot (tests/bench/slow_bot.py) takes 2 s for one
   conversation in SLOW_EVERY and answers the others at once; batches written open loop at
   SLOW_RATE/s. The age of the prompt conversations' replies, beside the same load with no
   slow conversation (the baseline, same run): a slow bot must not hold up the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.client import Pipeline

from lull.common.store.keys import Keys
from tests.bench.bench_limits import all_limits
from tests.bench.bench_sender_support import (
    batch,
    clear_sent,
    delivered,
    emit,
    fake_graph,
    prefill,
    sender,
    sent,
    wait_delivered,
)
from tests.bench.bench_support import (
    dedicated_redis,
    describe_cores,
    latency_result,
    paced,
    throughput_result,
    verdict,
)
from tests.bench.config import BenchConfig
from tests.bench.machine import sample, shares
from tests.bench.procs import BenchError
from tests.bench.report import Report, Row
from tests.bench.results import LoadResult
from tests.bench.slow_bot import HANDLER as SLOW_BOT
from tests.bench.slow_bot import SLOW_PREFIX, SLOW_S

TARGET_REPLIES_PER_S = 2_000
THROUGHPUT_BATCHES = 10_000
LATENCY_LOAD = 0.8
LATENCY_SECONDS = 3.0
SLOW_RATE = 200.0
SLOW_SECONDS = 4.0
SLOW_EVERY = 20
DELIVER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class _Rig:
    """What every phase runs against: one Redis, one fake Graph API."""

    config: BenchConfig
    url: str
    client: Redis
    graph_port: int
    helpers: list[int]
    """redis-server and the fake: ours, not "other processes"."""
    tmp: Path


def run(config: BenchConfig) -> Report:
    """Throughput, latency and both limits against one dedicated Redis and one fake Graph."""
    describe_cores(
        "sender",
        config,
        f"sender (echo) on core {config.server_cpu}; fake Graph API, redis-server and this "
        f"script on core {config.loadgen_cpu}",
    )
    with (
        dedicated_redis(config, "lull-bench-sender-") as (store, tmp),
        Redis.from_url(store.url, socket_timeout=10) as client,
        fake_graph(config, tmp) as (graph_port, graph_pid),
    ):
        assert store.process is not None
        rig = _Rig(config, store.url, client, graph_port, [store.process.pid, graph_pid], tmp)
        rate, latency, share = _throughput_and_latency(rig)
        limits = all_limits(rig.config, rig.url, client, graph_port, rig.tmp)
        prompt_alone = _prompt_ages(rig, slow_every=None)
        prompt_beside_slow = _prompt_ages(rig, slow_every=SLOW_EVERY)
    fast_enough = rate.ok_per_s >= TARGET_REPLIES_PER_S
    passed = fast_enough and all(limit.passed for limit in limits)
    verdicts = [
        verdict(
            f"replies sent, echo, fake Graph at zero latency: {rate.ok_per_s:,.0f}/s (target >= "
            f"{TARGET_REPLIES_PER_S:,}); sender {share:.0%} of its core busy",
            fast_enough,
        ),
        *(limit.line() for limit in limits),
        f"prompt conversations' reply age, 1 in {SLOW_EVERY} conversations' bot taking "
        f"{SLOW_S:g} s: p50 {prompt_beside_slow.p50_ms:.0f} ms, p99 "
        f"{prompt_beside_slow.p99_ms:.0f} ms; none slow (baseline): p50 "
        f"{prompt_alone.p50_ms:.0f} ms, p99 {prompt_alone.p99_ms:.0f} ms (no target set)",
    ]
    row = Row("sender (replies; batch age at Graph)", rate, latency)
    return Report("sender", [row], verdicts, passed)


def _throughput_and_latency(rig: _Rig) -> tuple[LoadResult, LoadResult, float]:
    """(replies/s, batch age at 80% of it, the sender's share of its core)."""
    namespace = "send"
    keys = Keys(namespace)
    client, graph_port = rig.client, rig.graph_port
    prefill(client, keys, (batch(f"u{n}", 1) for n in range(THROUGHPUT_BATCHES)))
    cpus = {rig.config.server_cpu, rig.config.loadgen_cpu}
    with sender(rig.config, rig.url, namespace, graph_port, rig.tmp) as pid:
        before = sample(cpus, pid, rig.helpers)
        samples = wait_delivered(client, keys, THROUGHPUT_BATCHES, DELIVER_TIMEOUT_S)
        share, other = shares(before, sample(cpus, pid, rig.helpers))
        started, first_done = next((t, n) for t, n in samples if n > 0)
        elapsed = samples[-1][0] - started
        rate = throughput_result("prefilled stream", elapsed, THROUGHPUT_BATCHES - first_done)
        accepted = len(sent(graph_port))
        if accepted != THROUGHPUT_BATCHES:
            raise BenchError(f"the fake accepted {accepted} replies for {THROUGHPUT_BATCHES}")
        clear_sent(graph_port)
        print(
            f"  throughput: {rate.ok_per_s:,.0f} replies/s ({THROUGHPUT_BATCHES:,} batches, "
            f"{elapsed:.2f} s from the first delivery); sender {share:.0%} of its core, other "
            f"processes {other:.2f} core",
            flush=True,
        )
        latency = _latency(client, keys, graph_port, LATENCY_LOAD * rate.ok_per_s)
    return rate, latency, share


def _latency(client: Redis, keys: Keys, graph_port: int, rate: float) -> LoadResult:
    """Batches closed now at rate per second; their age when the fake accepts the reply."""
    closed_at: dict[str, int] = {}

    def add(pipe: Pipeline, n: int, now_ms: int) -> None:
        user = f"late{rate:.0f}_{n}"
        closed_at[user] = now_ms
        emit(pipe, keys, batch(user, 1, now_ms))

    already = delivered(client, keys)
    written = paced(client, rate, LATENCY_SECONDS, add)
    wait_delivered(client, keys, already + written, DELIVER_TIMEOUT_S)
    ages = [
        float(s["at_ms"] - closed_at[s["payload"]["recipient"]["id"]]) for s in sent(graph_port)
    ]
    clear_sent(graph_port)
    if len(ages) != written:
        raise BenchError(f"the fake accepted {len(ages)} replies for {written} batches")
    result = latency_result("paced batches", LATENCY_SECONDS, ages, rate)
    print(
        f"  batch age at Graph, {rate:,.0f} batches/s for {LATENCY_SECONDS:g} s: "
        f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms",
        flush=True,
    )
    return result


def _prompt_ages(rig: _Rig, slow_every: int | None) -> LoadResult:
    """Batches at SLOW_RATE/s, every slow_every-th one for a slow bot (None: no slow one);
    the age of the other batches' replies when the fake accepts them."""
    namespace = f"slow{slow_every or 0}"
    keys = Keys(namespace)
    client, graph_port = rig.client, rig.graph_port
    closed_at: dict[str, int] = {}

    def add(pipe: Pipeline, n: int, now_ms: int) -> None:
        slow = slow_every is not None and n % slow_every == 0
        user = f"{SLOW_PREFIX if slow else 'prompt'}{n}"
        closed_at[user] = now_ms
        emit(pipe, keys, batch(user, 1, now_ms))

    with sender(rig.config, rig.url, namespace, graph_port, rig.tmp, handler=SLOW_BOT):
        written = paced(client, SLOW_RATE, SLOW_SECONDS, add)
        wait_delivered(client, keys, written, DELIVER_TIMEOUT_S)
    ages = [
        float(s["at_ms"] - closed_at[user])
        for s in sent(graph_port)
        if not (user := s["payload"]["recipient"]["id"]).startswith(SLOW_PREFIX)
    ]
    clear_sent(graph_port)
    result = latency_result("paced batches", SLOW_SECONDS, ages, SLOW_RATE)
    label = f"1 in {slow_every} bots slow" if slow_every else "no slow bot"
    print(
        f"  prompt conversations' reply age, {label}, {SLOW_RATE:.0f} batches/s for "
        f"{SLOW_SECONDS:g} s: p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms",
        flush=True,
    )
    return result
