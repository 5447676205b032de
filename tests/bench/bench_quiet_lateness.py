"""Close lateness at low traffic: lone conversations, one at a time, on an idle replica.

The loaded phase (bench_lateness) always has a near deadline, so the closer never sleeps
long there. Here nothing else is open: every window is the only one, and the closer only
closes it on time if a new window wakes it (issue: it used to wait for its 1 s safety
wake-up). Two kinds, each COUNT lone conversations, a random pause of up to PAUSE_MAX_S
between them so they fall at every phase of the closer's sleep:
- a button tap (a Messenger postback, in LULL_FLUSH_ON): due at once; lateness is
  closed_at - opened_at (the apply sets the deadline to the Redis clock at the apply);
- a text message in a sub-second gap (GAP_MS): lateness is closed_at - (event time + gap),
  with the lateness clamp far above any delay here.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
from redis import Redis

from lull.common.store.keys import Keys
from lull.dev.embedded_redis import free_port
from tests.bench.bench_support import PAGE_ID, latency_result, messenger_body, redis_now_ms
from tests.bench.config import BenchConfig
from tests.bench.procs import BenchError, pinned, python_module, serving
from tests.bench.results import LoadResult

NAMESPACE = "quiet"
GAP_MS = 300
COUNT = 25
PAUSE_MAX_S = 1.0
BATCH_TIMEOUT_MS = 5_000
SEED = 11


@dataclass(frozen=True)
class QuietLateness:
    """Lateness of lone windows, per way of falling due."""

    tap: LoadResult
    gap: LoadResult

    def line(self) -> str:
        """The verdict text (without the target)."""
        return (
            f"close lateness at low traffic, lone conversations: button tap p50 "
            f"{self.tap.p50_ms:.0f} ms, p99 {self.tap.p99_ms:.0f} ms; {GAP_MS} ms gap p50 "
            f"{self.gap.p50_ms:.0f} ms, p99 {self.gap.p99_ms:.0f} ms ({COUNT} windows each)"
        )


def postback_body(user: str, mid: str, t_ms: int) -> bytes:
    """A Messenger postback (a button tap), in Meta's webhook shape."""
    item = {
        "sender": {"id": user},
        "recipient": {"id": PAGE_ID},
        "timestamp": t_ms,
        "postback": {"mid": mid, "title": "Yes", "payload": "YES"},
    }
    return orjson.dumps(
        {"object": "page", "entry": [{"id": PAGE_ID, "time": t_ms, "messaging": [item]}]}
    )


def measure_quiet_lateness(
    config: BenchConfig, url: str, client: Redis, tmp: Path
) -> QuietLateness:
    """Run an idle replica and send it lone windows one at a time."""
    keys = Keys(NAMESPACE)
    port = free_port()
    env = {
        "LULL_REDIS_URL": url,
        "LULL_NAMESPACE": NAMESPACE,
        "LULL_WINDOW_MS": str(GAP_MS),
        "LULL_MAX_LATENESS_MS": "60000",
        "LULL_PROCESSOR_METRICS_PORT": str(port),
        "LULL_LOG_FORMAT": "json",
        "LULL_LOG_LEVEL": "warning",
    }
    pause = random.Random(SEED)
    argv = pinned(config.server_cpu, python_module("lull.processor"))
    with serving(argv, env, port, tmp / "processor-quiet.log"):
        tap: list[float] = []
        gap: list[float] = []
        last_id = "0-0"
        for n in range(2 * COUNT):
            time.sleep(pause.uniform(0, PAUSE_MAX_S))
            now_ms = redis_now_ms(client)
            user, mid = f"quiet{n}", f"m_quiet_{n:04d}"
            is_tap = n % 2 == 0
            body = (
                postback_body(user, mid, now_ms)
                if is_tap
                else messenger_body([user], [mid], now_ms, "is anyone there?")
            )
            client.xadd(keys.inbound(), {"body": body, "received_at": now_ms, "sig": "ok"})
            last_id, batch = _next_batch(client, keys, last_id)
            if is_tap:
                tap.append(float(batch["closed_at"] - batch["opened_at"]))
            else:
                gap.append(
                    float(batch["closed_at"] - (batch["messages"][0]["event_time"] + GAP_MS))
                )
    found = QuietLateness(
        tap=latency_result("closer, taps", 0.0, tap, None),
        gap=latency_result("closer, gaps", 0.0, gap, None),
    )
    print(f"  {found.line()}", flush=True)
    return found


def _next_batch(client: Redis, keys: Keys, last_id: str) -> tuple[str, dict[str, Any]]:
    """The next batch after last_id, waiting at most BATCH_TIMEOUT_MS for it."""
    found = cast(
        list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
        client.xread({keys.outbound(0): last_id}, count=1, block=BATCH_TIMEOUT_MS),
    )
    if not found:
        raise BenchError(f"no batch within {BATCH_TIMEOUT_MS} ms of a lone message")
    entry_id, fields = found[0][1][0]
    return entry_id.decode(), cast(dict[str, Any], orjson.loads(fields[b"batch"]))
