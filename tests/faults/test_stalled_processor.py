"""A processor stalled (SIGSTOP) past claim_idle while it holds entries, then resumed.

Real processes: Redis, ingest, two processors, one sender, the fake Graph API, the chaos
bot. The victim is frozen at a moment it holds unacknowledged inbound entries; the other
processor claims them, applies them and its windows close and are answered. Then the victim
wakes up and goes on with what it had read: it must not emit those messages again (no
message in two batches) and nothing may be answered twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from lull.common.platforms import parse
from lull.common.redis_conn import connect
from lull.common.store.streams import text
from lull.processor.app import GROUP
from tests.chaos.harness import Harness
from tests.chaos.load import LoadPlan, run_load
from tests.chaos.service import Service
from tests.chaos.stack import StackConfig
from tests.poll import until

SEED = 11
LOAD_S = 9.0
WAIT_S = 20.0
POLL_S = 0.002


async def _consumer_of(client: aioredis.Redis, stream: str, pid: int) -> str | None:
    """The victim's consumer name (hostname-pid-random), once it has joined the group."""
    try:
        consumers: Any = await client.xinfo_consumers(stream, GROUP)
    except aioredis.ResponseError:  # no group yet
        return None
    for consumer in consumers:
        name = text(consumer["name"])
        if f"-{pid}-" in name:
            return name
    return None


async def _pending_of(client: aioredis.Redis, stream: str, consumer: str) -> list[str]:
    rows: Any = await client.xpending_range(
        stream, GROUP, min="-", max="+", count=10_000, consumername=consumer
    )
    return [text(row["message_id"]) for row in rows]


async def _freeze_while_holding(
    victim: Service, client: aioredis.Redis, stream: str
) -> tuple[str, list[str]]:
    """SIGSTOP the victim at a moment it holds pending entries: (its consumer, their ids)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert victim.alive(), victim.log_tail()
        victim.freeze()
        consumer = await _consumer_of(client, stream, victim.pid)
        held = await _pending_of(client, stream, consumer) if consumer else []
        if consumer and held:
            return consumer, held
        victim.thaw()
        # Polling another process's progress, bounded by the deadline above.
        await asyncio.sleep(POLL_S)
    pytest.fail("the victim never held an unacknowledged entry")


async def _mids_of(client: aioredis.Redis, stream: str, ids: list[str]) -> set[str]:
    mids: set[str] = set()
    for entry_id in ids:
        rows: Any = await client.xrange(stream, entry_id, entry_id)
        for _id, fields in rows:
            mids.update(event.mid for event in parse(fields[b"body"]).events)
    return mids


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_processor_stalled_past_claim_idle_emits_and_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, StackConfig(processors=2, senders=1)) as harness:
        stack = harness.stack
        stream = stack.keys.inbound()
        victim = stack.processors[0]
        load = asyncio.create_task(run_load(LoadPlan(seconds=LOAD_S), stack.webhook_url, SEED))
        client = connect(stack.redis.url, timeout_s=5)
        try:
            consumer, held = await _freeze_while_holding(victim, client, stream)
            held_mids = await _mids_of(client, stream, held)
            frozen_at = time.monotonic()

            async def claimed() -> bool:
                return not await _pending_of(client, stream, consumer)

            async def answered() -> bool:
                done = {m for r in harness.bot.receipts for m in r.mids}
                return held_mids <= done

            # The other processor takes the entries over, and their batches are answered,
            # all while the victim is still frozen.
            await until(claimed, "the other processor claimed the victim's entries", WAIT_S)
            await until(answered, "the claimed messages were answered", WAIT_S)
            stalled_s = time.monotonic() - frozen_at
            victim.thaw()
        finally:
            await client.aclose()
        result = await load
        verdict = await harness.settle_and_judge(result, sender_kills=[], timeout_s=30)
        victim_starts, victim_alive = victim.starts, victim.alive()

    assert held_mids, "the held entries carry messages"
    assert stalled_s * 1000 > stack.config.claim_idle_ms
    assert not verdict.problems, "\n".join([verdict.summary_line(), *verdict.problems])
    assert verdict.duplicates == 0
    assert verdict.lost == 0
    assert held_mids <= result.accepted
    assert victim_starts == 1
    assert victim_alive
