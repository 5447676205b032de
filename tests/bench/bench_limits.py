"""The sender's rate limits as Meta would count them: sends per second at the fake Graph API.

Each phase starts a fresh sender on a fresh namespace (the limiter has never been used: a
quiet start), writes the batches once it is up and idle (a burst of traffic after a quiet
spell, not the replica's own start-up), and reads the time the fake accepted each send
(its at_ms):
- first second: sends in the first 1,000 ms from the first one;
- most in any second: the largest count in any 1,000 ms span of the run (a sliding window
  over every send), which for `N/PERIOD` must not exceed N (N + B - 1 for `N/PERIOD:B`);
- steady: from the first send at least 1 s after the start to the last one counted, sends
  per second (count - 1 over the time between them), against the configured rate: within
  3% for a rate without a burst (lull spaces units 1% wider than PERIOD / N).

Limits measured:
- account (LULL_RATE_GLOBAL=200/s): GLOBAL_BATCHES batches of one account, one reply each;
- per user (LULL_RATE_PER_USER=10/1s:1 and 10/1s:3, the shape of the default 10/1m:3 in
  seconds): USER_BATCHES batches of one conversation, delivered in seq order.

`python -m tests.bench limits` runs these alone; the sender bench runs them too.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from lull.common.store.keys import Keys
from lull.sender.rates.rate import parse_rate
from tests.bench.bench_sender_support import (
    batch,
    clear_sent,
    fake_graph,
    prefill,
    sender,
    sent,
    wait_delivered,
)
from tests.bench.bench_support import dedicated_redis, describe_cores, verdict
from tests.bench.config import BenchConfig
from tests.bench.procs import BenchError
from tests.bench.report import Report

GLOBAL_RATE = "200/s"
GLOBAL_BATCHES = 1_600
GLOBAL_MEASURE_S = 5.0
USER_RATES = ("10/1s:1", "10/1s:3")
USER_BATCHES = 40
SPAN_MS = 1000
STEADY_AFTER_MS = 1000
STEADY_TOLERANCE = 0.03
"""Measured steady rate within 3% of the configured one (lull's own 1% slack included)."""
DELIVER_TIMEOUT_S = 30.0
POLL_S = 0.02


@dataclass(frozen=True)
class Limit:
    """A configured limit and what the fake saw of it."""

    name: str
    rate: str
    sends: int
    first_second: int
    most_in_a_second: int
    steady_per_s: float

    @property
    def configured_per_s(self) -> float:
        """N per PERIOD, per second."""
        parsed = parse_rate(self.rate)
        assert parsed is not None
        return parsed.count * 1000 / parsed.period_ms

    @property
    def error(self) -> float:
        """Measured steady rate over configured, minus one."""
        return self.steady_per_s / self.configured_per_s - 1

    @property
    def bursty(self) -> bool:
        """Written with a burst above 1 (`N/PERIOD:B`)."""
        parsed = parse_rate(self.rate)
        assert parsed is not None
        return ":" in self.rate and parsed.burst > 1

    @property
    def most_allowed(self) -> int:
        """What the busiest second may hold: N, or N + B - 1 with a burst (GCRA's bound)."""
        parsed = parse_rate(self.rate)
        assert parsed is not None
        return parsed.count + (parsed.burst - 1 if self.bursty else 0)

    @property
    def passed(self) -> bool:
        """No second above most_allowed; without a burst, steady within STEADY_TOLERANCE (a
        burst limit that fell behind catches up faster than its rate, as it may)."""
        steady = self.bursty or abs(self.error) <= STEADY_TOLERANCE
        return self.most_in_a_second <= self.most_allowed and steady

    def line(self) -> str:
        """The report line: the first second, the busiest second, steady vs configured."""
        target = "no target: a burst may catch up" if self.bursty else "target within 3%"
        return verdict(
            f"{self.name} {self.rate}: first second {self.first_second} sends, most in any "
            f"1 s {self.most_in_a_second} (target <= {self.most_allowed}); steady "
            f"{self.steady_per_s:.2f}/s vs configured {self.configured_per_s:g}/s "
            f"({self.error:+.1%}, {target}); {self.sends} sends",
            self.passed,
        )


def measure(name: str, rate: str, at_ms: list[int], until_ms: float | None = None) -> Limit:
    """The figures of one run from the fake's at_ms of each send (steady: up to until_ms
    after the first send, or to the last)."""
    times = sorted(at_ms)
    if len(times) < 3:
        raise BenchError(f"{name}: only {len(times)} sends to measure")
    first = times[0]
    first_second = bisect.bisect_left(times, first + SPAN_MS)
    most = max(bisect.bisect_left(times, t + SPAN_MS) - i for i, t in enumerate(times))
    end = times[-1] if until_ms is None else first + until_ms
    steady = [t for t in times if first + STEADY_AFTER_MS <= t <= end]
    if len(steady) < 2 or steady[-1] == steady[0]:
        raise BenchError(f"{name}: too few sends after the first second to measure a rate")
    per_s = (len(steady) - 1) / ((steady[-1] - steady[0]) / 1000)
    return Limit(name, rate, len(times), first_second, most, per_s)


def account_limit(
    config: BenchConfig, url: str, client: Redis, graph_port: int, tmp: Path
) -> Limit:
    """Batches of one account under LULL_RATE_GLOBAL, from a quiet start."""
    namespace = "global"
    keys = Keys(namespace)
    rate = parse_rate(GLOBAL_RATE)
    assert rate is not None
    # Enough for the first second (the burst and the rate), the measured seconds and a margin
    # past them: a sender stopped inside the measured span would show a rate it never had.
    per_s = rate.count * 1000 / rate.period_ms
    wanted = rate.burst + int(per_s * (STEADY_AFTER_MS / 1000 + GLOBAL_MEASURE_S + 0.5))
    with sender(config, url, namespace, graph_port, tmp, rate_global=GLOBAL_RATE):
        prefill(client, keys, (batch(f"g{n}", 1) for n in range(GLOBAL_BATCHES)))
        wait_delivered(client, keys, wanted, DELIVER_TIMEOUT_S)
    at_ms = [s["at_ms"] for s in sent(graph_port)]
    clear_sent(graph_port)
    until_ms = STEADY_AFTER_MS + GLOBAL_MEASURE_S * 1000
    limit = measure("account limit LULL_RATE_GLOBAL, one account,", GLOBAL_RATE, at_ms, until_ms)
    print(f"  {limit.line()}", flush=True)
    return limit


def user_limit(
    config: BenchConfig, url: str, client: Redis, graph_port: int, tmp: Path, *, rate: str
) -> Limit:
    """USER_BATCHES batches of one conversation under LULL_RATE_PER_USER, from a quiet start."""
    namespace = f"user{rate.replace('/', '_').replace(':', '_')}"
    keys = Keys(namespace)
    conversation = batch("solo", 1)["conversation"]
    with sender(config, url, namespace, graph_port, tmp, rate_per_user=rate):
        prefill(client, keys, (batch("solo", seq) for seq in range(1, USER_BATCHES + 1)))
        deadline = time.monotonic() + DELIVER_TIMEOUT_S
        state = keys.conversation_state(conversation)
        while int(client.hget(state, "delivered") or 0) < USER_BATCHES:
            if time.monotonic() > deadline:
                raise BenchError(f"{USER_BATCHES} batches of one conversation not delivered")
            time.sleep(POLL_S)
    at_ms = [s["at_ms"] for s in sent(graph_port)]
    clear_sent(graph_port)
    limit = measure("per-user limit LULL_RATE_PER_USER, one conversation,", rate, at_ms)
    print(f"  {limit.line()}", flush=True)
    return limit


def all_limits(
    config: BenchConfig, url: str, client: Redis, graph_port: int, tmp: Path
) -> list[Limit]:
    """The account limit, then each per-user rate."""
    limits = [account_limit(config, url, client, graph_port, tmp)]
    limits += [user_limit(config, url, client, graph_port, tmp, rate=rate) for rate in USER_RATES]
    return limits


def run(config: BenchConfig) -> Report:
    """`python -m tests.bench limits`: the limit phases alone, on their own Redis and fake."""
    describe_cores(
        "limits",
        config,
        f"sender (echo) on core {config.server_cpu}; fake Graph API, redis-server and this "
        f"script on core {config.loadgen_cpu}",
    )
    with (
        dedicated_redis(config, "lull-bench-limits-") as (store, tmp),
        Redis.from_url(store.url, socket_timeout=10) as client,
        fake_graph(config, tmp) as (graph_port, _pid),
    ):
        limits = all_limits(config, store.url, client, graph_port, tmp)
    return Report(
        "limits", [], [limit.line() for limit in limits], all(limit.passed for limit in limits)
    )
