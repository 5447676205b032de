"""Replies of many conversations of one account ready in one moment go to Meta as one Graph
API batch request (sender/graph/batched_sends.py), against the fake Graph API on loopback: each
reply once, each conversation's replies in order, a per-call error handled as a lone call's,
a refused batch sent reply by reply."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from lull.dev.fake_graph import FakeGraph, ScriptedError
from lull.sender.bot import Reached
from lull.sender.graph.batched_sends import BatchingGraphClient
from tests.sender.conftest import MakeSender, emit, sent_texts

USERS = [f"u{n}" for n in range(5)]


class Together:
    """A bot that answers every batch at once when `expected` batches are with it, so their
    replies are ready in the same moment; each batch is answered with two replies."""

    name = "together"
    forward_only = False

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.calls = 0
        self.all_in = asyncio.Event()

    async def __call__(
        self, batch: dict[str, Any], reached: Reached | None = None
    ) -> list[dict[str, Any]]:
        """Two replies naming the batch, once every expected batch is here."""
        if reached is not None:
            reached()
        self.calls += 1
        if self.calls >= self.expected:
            self.all_in.set()
        await self.all_in.wait()
        return [{"text": f"{batch['text']} 1"}, {"text": f"{batch['text']} 2"}]

    async def close(self) -> None:
        """Nothing to release."""


async def _emit_all(redis: aioredis.Redis, make_sender: MakeSender, **env: str) -> Any:
    sender = await make_sender(
        LULL_TYPING="off", LULL_READ_RECEIPTS="off", **{"LULL_SEND_BATCH": "on", **env}
    )
    sender.deliverer.bot = Together(len(USERS))
    for user in USERS:
        await emit(redis, sender.keys, user, 1, f"hi {user}")
    return sender


def _expected() -> list[tuple[str, str]]:
    return sorted((user, f"hi {user} {n}") for user in USERS for n in (1, 2))


async def test_replies_of_one_moment_go_in_one_batch_each_once_in_order(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await _emit_all(redis, make_sender)
    assert isinstance(sender.deliverer.graph, BatchingGraphClient)
    await sender.drain()
    # Each conversation's first reply, then its second: one send of a conversation in flight.
    assert graph.batch_requests == 2
    assert sender.deliverer.graph.batcher.batches == 2
    assert sorted(sent_texts(graph)) == _expected()
    for user in USERS:
        mine = [text for to, text in sent_texts(graph) if to == user]
        assert mine == [f"hi {user} 1", f"hi {user} 2"]


async def test_a_temporary_error_of_one_reply_in_a_batch_retries_that_batch_only(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await _emit_all(redis, make_sender)
    graph.script([ScriptedError(500, 2, "Service temporarily unavailable")], 0)
    await sender.drain()
    assert sorted(sent_texts(graph)) == _expected()
    assert graph.message_calls == 2 * len(USERS) + 1  # the failed call, once more


async def test_a_permanent_error_of_one_reply_in_a_batch_dead_letters_that_batch_only(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await _emit_all(redis, make_sender)
    graph.script([ScriptedError(400, 100, "(#100) No matching user found")], 0)
    await sender.drain()
    assert await redis.xlen(sender.keys.dead()) == 1
    # The other conversations got both replies; the dead one none.
    users = {to for to, _ in sent_texts(graph)}
    assert len(users) == len(USERS) - 1
    assert len(sent_texts(graph)) == 2 * (len(USERS) - 1)


async def test_a_refused_batch_request_is_sent_reply_by_reply(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await _emit_all(redis, make_sender)
    graph.script([], 0, batch_errors=[ScriptedError(400, 3, "(#3) capability missing")])
    await sender.drain()
    assert sorted(sent_texts(graph)) == _expected()
    assert graph.batch_requests == 1  # refused; the account's replies then went alone
    assert graph.message_calls == 2 * len(USERS)


async def test_send_batch_off_sends_each_reply_alone(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await _emit_all(redis, make_sender, LULL_SEND_BATCH="off")
    assert not isinstance(sender.deliverer.graph, BatchingGraphClient)
    await sender.drain()
    assert sorted(sent_texts(graph)) == _expected()
    assert graph.batch_requests == 0
