"""A slow bot for one conversation holds up nobody else: batches read after its batch are
answered while it is still thinking; a stop waits for it (bounded) and leaves it pending."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from lull.dev.fake_graph import FakeGraph
from lull.sender.bot import Reached
from tests.poll import until
from tests.sender.conftest import MakeSender, emit, sent_texts

WAIT_S = 5.0


class SlowFor:
    """An echo bot that holds the batches of `user` until the test opens its gate."""

    name = "slow-for-one"
    forward_only = False

    def __init__(self, user: str) -> None:
        self.user = user
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def __call__(
        self, batch: dict[str, Any], reached: Reached | None = None
    ) -> list[dict[str, Any]]:
        """Echo the batch's text, after the gate opens when it is the slow user's."""
        if reached is not None:
            reached()  # on its way at once, as a python: handler
        if batch["user_id"] == self.user:
            self.entered.set()
            await self.gate.wait()
        return [{"text": batch["text"]}]

    async def close(self) -> None:
        """Nothing to release."""


async def test_batches_read_after_a_slow_one_are_answered_while_it_thinks(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    bot = SlowFor("slow")
    sender.deliverer.bot = bot
    await emit(redis, sender.keys, "slow", 1, "a hard question")
    task = asyncio.create_task(sender.run())
    try:
        await asyncio.wait_for(bot.entered.wait(), WAIT_S)
        # Read after the slow batch, in later reads: a loop that waited for the bot would
        # not read them until the gate opens.
        for user in ("a", "b"):
            await emit(redis, sender.keys, user, 1, f"{user} here")
        await until(lambda: len(graph.sent) == 2, "a and b were answered", WAIT_S)
        assert sorted(sent_texts(graph)) == [("a", "a here"), ("b", "b here")]

        bot.gate.set()
        await until(lambda: len(graph.sent) == 3, "the slow batch was answered", WAIT_S)
    finally:
        sender.request_stop()
        await asyncio.wait_for(task, WAIT_S)
    assert sent_texts(graph)[-1] == ("slow", "a hard question")
    stream = sender.keys.outbound(sender.keys.shard_of("messenger:p1:slow"))
    assert (await redis.xpending(stream, "sender"))["pending"] == 0
    running = sender.registry.get_sample_value(
        "lull_consumer_entries_total", {"group": "sender", "outcome": "running"}
    )
    # The slow one ran in the background; on a loaded machine a and b may too (over 20 ms).
    assert running is not None and running >= 1


async def test_a_stop_waits_for_a_slow_delivery_then_leaves_it_pending(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    # Close waits a bot call plus a send at most: 0.2 s here.
    sender = await make_sender(LULL_HANDLER_TIMEOUT_MS="100", LULL_GRAPH_TIMEOUT_MS="100")
    bot = SlowFor("slow")
    sender.deliverer.bot = bot  # in-process, so no handler timeout cuts it short
    await emit(redis, sender.keys, "slow", 1, "never answered")
    task = asyncio.create_task(sender.run())
    await asyncio.wait_for(bot.entered.wait(), WAIT_S)
    sender.request_stop()
    await asyncio.wait_for(task, WAIT_S)
    assert sender.deliveries.running == 1

    await asyncio.wait_for(sender.close(), WAIT_S)
    assert sender.deliveries.running == 0
    assert graph.sent == []
    stream = sender.keys.outbound(sender.keys.shard_of("messenger:p1:slow"))
    # Still pending to this replica: any replica claims it after LULL_CLAIM_IDLE_MS.
    assert (await redis.xpending(stream, "sender"))["pending"] == 1
