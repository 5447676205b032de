"""Presence on versus off, same run: the sender's replies/s and the age of its replies.

The bot (tests/bench/presence_bot.py) thinks THINK_S before it answers, so the read receipt
and typing calls (mark_seen, typing_on: Messenger batches) go out beside it; with an
instant bot they would be cancelled before they start and cost nothing. The sender gets
CONCURRENCY slots, so that the bot's think time does not cap replies/s: the sender's core is
the limit, and presence calls, two per batch besides the reply, are what it spends more on.

1. Replies/s: BATCHES batches (one per conversation) wait on the outbound stream of a fresh
   namespace before a fresh sender starts; counted from the first finished batch to the
   last. Presence off, on, and on after AFTER_MS (a bot answering sooner costs no call),
   ROUNDS times over, on the same Redis and fake Graph API; the best round counts.
2. Reply age: batches closed now at AGE_RATE/s for AGE_SECONDS; each reply's age is the
   fake's at_ms minus closed_at (THINK_S included, in both).

`make bench` runs this after the sender bench; `python -m tests.bench presence` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.client import Pipeline

from lull.common.store.keys import Keys
from tests.bench.bench_sender_support import (
    batch,
    clear_presence,
    clear_sent,
    emit,
    fake_graph,
    prefill,
    presence,
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
from tests.bench.presence_bot import HANDLER, THINK_S
from tests.bench.procs import BenchError
from tests.bench.report import Report, Row
from tests.bench.results import LoadResult

BATCHES = 6_000
ROUNDS = 2
CONCURRENCY = "1000"
AGE_RATE = 150.0
AGE_SECONDS = 3.0
DELIVER_TIMEOUT_S = 60.0
RATE_TOLERANCE = 0.10
"""Target: replies/s with presence on within 10% of off."""
AGE_TOLERANCE_MS = 10.0
"""Target: presence adds no latency; p50 on within this of p50 off (timer noise)."""
AFTER_MS = 200
"""The third mode: presence only for bots slower than this (LULL_PRESENCE_AFTER_MS)."""
PRESENCE = {
    "off": {},
    "on": {"typing": "on", "read_receipts": "batch"},
    "after": {"typing": "on", "read_receipts": "batch", "presence_after_ms": str(AFTER_MS)},
}


@dataclass(frozen=True)
class _Rig:
    """What every phase runs against: one Redis, one fake Graph API."""

    config: BenchConfig
    url: str
    client: Redis
    graph_port: int
    graph_pid: int
    tmp: Path

    def limits(self, mode: str) -> dict[str, str]:
        """The sender's settings for presence `mode` (on, off)."""
        return {"handler": HANDLER, "concurrency": CONCURRENCY, **PRESENCE[mode]}


def run(config: BenchConfig) -> Report:
    """Replies/s and reply age with presence off, on, and on after AFTER_MS, alternating,
    same run."""
    describe_cores(
        "presence",
        config,
        f"sender (bot thinking {THINK_S * 1000:.0f} ms, {CONCURRENCY} slots) on core "
        f"{config.server_cpu}; fake Graph API, redis-server and this script on core "
        f"{config.loadgen_cpu}",
    )
    rates: dict[str, list[LoadResult]] = {mode: [] for mode in PRESENCE}
    cpu_ms: dict[str, list[float]] = {mode: [] for mode in PRESENCE}
    ages: dict[str, LoadResult] = {}
    with (
        dedicated_redis(config, "lull-bench-presence-") as (store, tmp),
        Redis.from_url(store.url, socket_timeout=10) as client,
        fake_graph(config, tmp) as (graph_port, graph_pid),
    ):
        rig = _Rig(config, store.url, client, graph_port, graph_pid, tmp)
        for round_no in range(ROUNDS):
            for mode in PRESENCE:
                rate, per_reply_ms = _replies_per_s(rig, mode, f"pres{mode}{round_no}")
                rates[mode].append(rate)
                cpu_ms[mode].append(per_reply_ms)
        for mode in PRESENCE:
            ages[mode] = _ages(rig, mode)
    best = {mode: max(r.ok_per_s for r in found) for mode, found in rates.items()}
    ratio = best["on"] / best["off"]
    rate_ok = ratio >= 1 - RATE_TOLERANCE
    age_ok = ages["on"].p50_ms <= ages["off"].p50_ms + AGE_TOLERANCE_MS
    each = {mode: ", ".join(f"{r.ok_per_s:,.0f}" for r in found) for mode, found in rates.items()}
    verdicts = [
        verdict(
            f"replies/s, presence on: {best['on']:,.0f} (rounds {each['on']}); off: "
            f"{best['off']:,.0f} (rounds {each['off']}); on/off {ratio:.0%} (target >= "
            f"{1 - RATE_TOLERANCE:.0%})",
            rate_ok,
        ),
        f"sender CPU a reply (best round): presence on {min(cpu_ms['on']):.2f} ms, off "
        f"{min(cpu_ms['off']):.2f} ms, after {AFTER_MS} ms {min(cpu_ms['after']):.2f} ms",
        verdict(
            f"reply age at {AGE_RATE:.0f} batches/s (bot {THINK_S * 1000:.0f} ms included), "
            f"presence on: p50 {ages['on'].p50_ms:.0f} ms, p99 {ages['on'].p99_ms:.0f} ms; "
            f"off: p50 {ages['off'].p50_ms:.0f} ms, p99 {ages['off'].p99_ms:.0f} ms (target: "
            f"p50 on <= off + {AGE_TOLERANCE_MS:.0f} ms)",
            age_ok,
        ),
        f"presence after {AFTER_MS} ms (LULL_PRESENCE_AFTER_MS; the bot answers in "
        f"{THINK_S * 1000:.0f} ms, so no presence call): {best['after']:,.0f} replies/s "
        f"(rounds {each['after']}), reply age p50 {ages['after'].p50_ms:.0f} ms, p99 "
        f"{ages['after'].p99_ms:.0f} ms (no target)",
    ]
    rows = [
        Row("sender, presence off (replies; reply age)", rates["off"][-1], ages["off"]),
        Row("sender, presence on (replies; reply age)", rates["on"][-1], ages["on"]),
        Row(f"sender, presence after {AFTER_MS} ms", rates["after"][-1], ages["after"]),
    ]
    return Report("presence", rows, verdicts, rate_ok and age_ok)


def _replies_per_s(rig: _Rig, mode: str, namespace: str) -> tuple[LoadResult, float]:
    """BATCHES prefilled batches through a fresh sender; replies/s, and the sender's CPU ms
    per reply."""
    keys = Keys(namespace)
    client, graph_port = rig.client, rig.graph_port
    prefill(client, keys, (batch(f"u{n}", 1) for n in range(BATCHES)))
    cpus = {rig.config.server_cpu, rig.config.loadgen_cpu}
    with sender(rig.config, rig.url, namespace, graph_port, rig.tmp, **rig.limits(mode)) as pid:
        before = (sample(cpus, pid, []), sample(cpus, rig.graph_pid, []))
        samples = wait_delivered(client, keys, BATCHES, DELIVER_TIMEOUT_S)
        after = (sample(cpus, pid, []), sample(cpus, rig.graph_pid, []))
    started, first_done = next((t, n) for t, n in samples if n > 0)
    elapsed = samples[-1][0] - started
    rate = throughput_result("prefilled stream", elapsed, BATCHES - first_done)
    sender_share, _ = shares(before[0], after[0])
    graph_share, _ = shares(before[1], after[1])
    # Of the sender's own core: what one reply (and its presence calls) costs it.
    sender_ms = (after[0].server_s - before[0].server_s) * 1000 / BATCHES
    accepted, calls = len(sent(graph_port)), len(presence(graph_port))
    clear_sent(graph_port)
    clear_presence(graph_port)
    if accepted != BATCHES:
        raise BenchError(f"the fake accepted {accepted} replies for {BATCHES}")
    print(
        f"  presence {mode}: {rate.ok_per_s:,.0f} replies/s ({BATCHES:,} batches, "
        f"{elapsed:.2f} s); presence calls accepted: {calls:,}; sender {sender_share:.0%} of "
        f"its core, {sender_ms:.2f} ms CPU a reply; fake Graph {graph_share:.0%} of a core",
        flush=True,
    )
    return rate, sender_ms


def _ages(rig: _Rig, mode: str) -> LoadResult:
    """Batches closed now at AGE_RATE/s; their replies' age at the fake."""
    keys = Keys(f"presage{mode}")
    client, graph_port = rig.client, rig.graph_port
    closed_at: dict[str, int] = {}

    def add(pipe: Pipeline, n: int, now_ms: int) -> None:
        user = f"age{n}"
        closed_at[user] = now_ms
        emit(pipe, keys, batch(user, 1, now_ms))

    with sender(rig.config, rig.url, keys.namespace, graph_port, rig.tmp, **rig.limits(mode)):
        written = paced(client, AGE_RATE, AGE_SECONDS, add)
        wait_delivered(client, keys, written, DELIVER_TIMEOUT_S)
    values = [
        float(s["at_ms"] - closed_at[s["payload"]["recipient"]["id"]]) for s in sent(graph_port)
    ]
    calls = len(presence(graph_port))
    clear_sent(graph_port)
    clear_presence(graph_port)
    if len(values) != written:
        raise BenchError(f"the fake accepted {len(values)} replies for {written} batches")
    result = latency_result("paced batches", AGE_SECONDS, values, AGE_RATE)
    print(
        f"  presence {mode}: reply age p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms "
        f"({written:,} batches at {AGE_RATE:.0f}/s); presence calls accepted: {calls:,}",
        flush=True,
    )
    return result
