"""A sender replica stalled past claim_idle_ms (a GC pause, SIGSTOP, a slow bot) while another
replica claims its batch: when it resumes it must not send what the other one sends.

Two Sender instances on one Redis. Replica A reads the batch as its consumer and delivers it
with no consumer loop around it, as a frozen (SIGSTOPped) process would: nothing touches its
entry, which idles on Redis. A's bot blocks on an event the test controls, so A is stalled at
a known point (between the handler call and the first Graph API send).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from lull.common.consumer import Decided, Entry, RetryLater
from lull.common.store.streams import ensure_group, text
from lull.dev.fake_graph import FakeGraph
from lull.sender.app import Sender
from lull.sender.bot import Reached
from tests.sender import conftest as sender_fixtures
from tests.sender.conftest import MakeSender, emit, sent_texts

# The sender tests' fixtures: the fake Graph API and senders built on the test Redis.
graph_server = sender_fixtures.graph_server
graph = sender_fixtures.graph
sender_env = sender_fixtures.sender_env
make_sender = sender_fixtures.make_sender

CLAIM_IDLE_MS = 20
WAIT_S = 5.0


class GatedEcho:
    """An echo bot that, once called, waits until the test opens its gate: a stall."""

    name = "gated-echo"
    forward_only = False

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.calls = 0

    async def __call__(
        self, batch: dict[str, Any], reached: Reached | None = None
    ) -> list[dict[str, Any]]:
        """Echo the batch's text once the gate is open."""
        if reached is not None:
            reached()  # on its way at once, as a python: handler
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        return [{"text": batch["text"]}]

    async def close(self) -> None:
        """Nothing to release."""


async def idle_past(redis: aioredis.Redis, stream: str, idle_ms: int) -> None:
    """Wait (bounded) until the stream's pending entry has been idle idle_ms on Redis's clock."""
    deadline = time.monotonic() + WAIT_S
    while True:
        rows = cast(
            list[dict[str, Any]],
            await redis.xpending_range(stream, "sender", min="-", max="+", count=1),
        )
        if rows and rows[0]["time_since_delivered"] >= idle_ms:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"entry not idle {idle_ms} ms within {WAIT_S} s: {rows}")
        await asyncio.sleep(0.005)


async def deliver_frozen(redis: aioredis.Redis, sender: Sender) -> Decided:
    """Read the batch as sender's consumer and deliver it, with no loop to touch the entry."""
    stream = sender.keys.outbound(0)
    await ensure_group(redis, stream, "sender")
    reply: Any = await redis.xreadgroup("sender", sender.consumer.name, {stream: ">"}, count=1)
    [[_stream, [(entry_id, fields)]]] = reply
    return await sender.deliverer.deliver(Entry(stream, text(entry_id), fields, 1))


def deliveries(sender: Any, outcome: str) -> float:
    """lull_sender_deliveries_total{outcome} of one replica."""
    value = sender.registry.get_sample_value("lull_sender_deliveries_total", {"outcome": outcome})
    return value or 0.0


async def test_a_stalled_replica_does_not_send_what_the_claimer_sent(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    stalled = await make_sender(LULL_CLAIM_IDLE_MS=str(CLAIM_IDLE_MS))
    bot = GatedEcho()
    stalled.deliverer.bot = bot
    keys = stalled.keys
    await emit(redis, keys, "u1", 1, "hello once")
    first = asyncio.create_task(deliver_frozen(redis, stalled))
    await asyncio.wait_for(bot.entered.wait(), WAIT_S)

    await idle_past(redis, keys.outbound(0), 3 * CLAIM_IDLE_MS)
    claimer = await make_sender(LULL_CLAIM_IDLE_MS=str(CLAIM_IDLE_MS))
    await claimer.drain()  # its claim pass takes the batch over and delivers it
    assert sent_texts(graph) == [("u1", "hello once")]

    bot.gate.set()  # the stalled replica resumes with the bot's answer in hand
    assert isinstance(await asyncio.wait_for(first, WAIT_S), RetryLater)
    assert sent_texts(graph) == [("u1", "hello once")]
    assert deliveries(stalled, "taken_over") == 1
    assert deliveries(stalled, "sent") == 0
    assert (await redis.xpending(keys.outbound(0), "sender"))["pending"] == 0
    assert await redis.xlen(keys.dead()) == 0


async def test_a_stalled_replica_stops_while_the_claimer_is_still_working(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    stalled = await make_sender(LULL_CLAIM_IDLE_MS=str(CLAIM_IDLE_MS))
    stalled_bot = GatedEcho()
    stalled.deliverer.bot = stalled_bot
    keys = stalled.keys
    stream = keys.outbound(0)
    await emit(redis, keys, "u1", 1, "hello once")
    first = asyncio.create_task(deliver_frozen(redis, stalled))
    await asyncio.wait_for(stalled_bot.entered.wait(), WAIT_S)

    await idle_past(redis, stream, 3 * CLAIM_IDLE_MS)
    claimer = await make_sender(LULL_CLAIM_IDLE_MS=str(CLAIM_IDLE_MS))
    claimer_bot = GatedEcho()
    claimer.deliverer.bot = claimer_bot
    second = asyncio.create_task(claimer.drain())
    await asyncio.wait_for(claimer_bot.entered.wait(), WAIT_S)
    [row] = cast(
        list[dict[str, Any]],
        await redis.xpending_range(stream, "sender", min="-", max="+", count=1),
    )
    assert row["consumer"] == claimer.consumer.name.encode()

    stalled_bot.gate.set()  # resumes first: the entry is the claimer's now
    assert isinstance(await asyncio.wait_for(first, WAIT_S), RetryLater)
    assert graph.sent == []
    assert deliveries(stalled, "taken_over") == 1

    claimer_bot.gate.set()
    await asyncio.wait_for(second, WAIT_S)
    assert sent_texts(graph) == [("u1", "hello once")]
    assert (await redis.xpending(stream, "sender"))["pending"] == 0
    assert await redis.hget(keys.conversation_state("messenger:p1:u1"), "delivered") == b"1"
