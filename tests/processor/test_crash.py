"""Crash recovery with real processes: SIGKILL after reading, before acknowledging."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis

from lull.common.consumer import ConsumerConfig
from lull.processor.app import GROUP, Processor
from lull.processor.settings import ProcessorSettings
from tests.processor.test_processor import ingest, messenger_body
from tests.processor.windowing import batches, life_seqs, redis_now_ms

USERS = 200
# Entries one XREADGROUP of the processor takes (ConsumerConfig's default).
READ_COUNT = ConsumerConfig(streams=["in"], group="g", dead_stream="dead").read_count
MESSAGES_PER_USER = 10


async def _stop_while_holding(
    proc: subprocess.Popen[bytes], redis: aioredis.Redis, stream: str, more_than: int = 0
) -> int:
    """Freeze the process at a moment it holds more than more_than unacknowledged entries;
    returns how many."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, "processor exited early"
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            summary = await redis.xpending(stream, GROUP)
        except aioredis.ResponseError:  # group not created yet
            summary = {"pending": 0}
        if summary["pending"] > more_than:
            return int(summary["pending"])
        os.kill(proc.pid, signal.SIGCONT)
        # Polling an outside process's progress, bounded above; not waiting for our own work.
        await asyncio.sleep(0.002)
    pytest.fail(f"the processor never held more than {more_than} unacknowledged entries")


@pytest.mark.slow
@pytest.mark.parametrize(
    "more_than",
    # Over one read (ConsumerConfig.read_count): killed with a read ahead in hand too.
    [0, READ_COUNT],
    ids=["one-read", "read-ahead"],
)
async def test_sigkill_between_read_and_ack_loses_nothing_and_duplicates_nothing(
    redis: aioredis.Redis, base_env: dict[str, str], more_than: int
) -> None:
    env = {**base_env, "LULL_WINDOW_MS": "40", "LULL_MAX_WAIT_MS": "400",
           "LULL_CLAIM_IDLE_MS": "10", "LULL_CLAIM_INTERVAL_MS": "50",
           "LULL_PROCESSOR_METRICS_PORT": "0"}  # fmt: skip
    settings = ProcessorSettings.from_env(env)
    survivor = Processor(redis, settings)
    keys = survivor.keys
    now = await redis_now_ms(redis)
    expected = []
    for n in range(MESSAGES_PER_USER):
        for user in range(USERS):
            mid = f"u{user}-m{n}"
            expected.append(mid)
            await ingest(redis, keys, messenger_body(f"u{user}", [mid], now + n))

    proc = subprocess.Popen(
        [sys.executable, "-m", "lull.processor"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        held = await _stop_while_holding(proc, redis, keys.inbound(), more_than)
        proc.kill()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    assert held > more_than

    # The survivor claims what the dead replica held, and closes the windows it left open.
    for _ in range(50):
        await survivor.drain()
        if (await redis.xpending(keys.inbound(), GROUP))["pending"] == 0:
            break
    else:
        pytest.fail("entries still pending after recovery")
    await survivor.drain()

    found = await batches(redis, keys)
    counts = Counter(m["mid"] for b in found for m in b["messages"])
    assert set(counts) == set(expected), "every accepted message is in a batch"
    assert max(counts.values()) == 1, "no message is in two batches"
    seqs: dict[str, list[int]] = {}
    for b, seq in zip(found, await life_seqs(redis, keys, found), strict=True):
        seqs.setdefault(b["conversation"], []).append(seq)
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())
