"""Redis fails after the Graph API accepted a reply and before the batch is marked: the
replica that is still alive does not send that reply again, nor call the bot again."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from lull.common.store.keys import Keys
from lull.common.store.legacy import LegacyKeys
from lull.dev.fake_graph import FakeGraph
from tests.sender.conftest import MakeSender, emit, sent_texts


async def test_finish_failing_after_the_send_does_not_send_again(
    redis: aioredis.Redis, namespace: str, make_sender: MakeSender, graph: FakeGraph
) -> None:
    keys = Keys(namespace)
    conversation = "messenger:p1:u1"
    shard = keys.shard_of(conversation)
    # The conversation is in 0.1's layout (batch 2 closed too), so the finish step moves it
    # and its Lua call fails on 0.1's dead-seq hash (WRONGTYPE), which loading the batch
    # never reads. So: load, bot, send all succeed, then the mark fails, as if Redis went away.
    await redis.set(LegacyKeys.of(keys, shard).dead_seqs, "not a hash")
    await emit(redis, keys, "u1", 1, "hello")
    await redis.delete(keys.conversation_state(conversation))
    await redis.hset(LegacyKeys.of(keys, shard).seq, conversation, 2)
    sender = await make_sender()
    drain = asyncio.create_task(sender.drain())

    deadline = time.monotonic() + 10
    while not (graph.sent and sender.consumer.held >= 1):  # sent, then held for a retry
        assert time.monotonic() < deadline, "the send and the failed finish did not happen"
        assert not drain.done()
        await asyncio.sleep(0.01)
    await redis.delete(LegacyKeys.of(keys, shard).dead_seqs)  # Redis is back
    await asyncio.wait_for(drain, 20)

    assert sent_texts(graph) == [("u1", "hello")]  # once, not twice
    assert await redis.hget(keys.conversation_state(conversation), "delivered") == b"1"
    assert await redis.xpending(keys.outbound(shard), "sender") == {
        "pending": 0, "min": None, "max": None, "consumers": []
    }  # fmt: skip
