"""Presence of a batch the bot does not answer at once: read once per batch, whichever
replica retries it; typing only while a bot call is in flight; nothing for a bot that
cannot be reached (a newcomer saw 6 read calls in 12 s for one batch never answered)."""

from __future__ import annotations

from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from lull.common.consumer import Entry, RetryLater
from lull.dev.embedded_redis import free_port
from lull.dev.fake_graph import FakeGraph
from lull.sender.app import Sender
from lull.sender.bot import BotRetry, Reached
from tests.sender.conftest import MakeSender, emit
from tests.sender.fake_bot import FakeBot
from tests.sender.test_presence import actions, settle

GROUP = "sender"
ReadReply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]
"""XREADGROUP's reply: per stream, its entries (id, fields)."""
MESSENGER = ("messenger", "p1", "u1")
WHATSAPP = ("whatsapp", "wa1", "15550000002")


class FailsThenAnswers:
    """A bot in this process: on each attempt it waits until the fake Graph API has seen
    `calls[n]` presence calls in all, then fails (BotRetry) or, on the last, answers."""

    name = "fails-then-answers"
    forward_only = False

    def __init__(self, graph: FakeGraph, calls: list[int]) -> None:
        self.graph = graph
        self.calls = calls

    async def __call__(
        self, batch: dict[str, Any], reached: Reached | None = None
    ) -> list[dict[str, Any]]:
        """Fail until the last attempt, each after the presence the test expects."""
        if reached is not None:
            reached()
        await self.graph.wait_presence(self.calls.pop(0))
        if self.calls:
            raise BotRetry("bot answered 503")
        return [{"text": "at last"}]

    async def close(self) -> None:
        """Nothing to release."""


async def _read(redis: aioredis.Redis, stream: str, consumer: str) -> Entry:
    """The batch entry, read by one replica's consumer as its loop would."""
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    read = cast(ReadReply, await redis.xreadgroup(GROUP, consumer, {stream: ">"}))
    [[_, [(entry_id, fields)]]] = read
    return Entry(stream, entry_id.decode(), fields, 1)


async def _attempt(sender: Sender, entry: Entry) -> object:
    """One delivery attempt, and the presence work it started, to the end."""
    outcome = await sender.deliverer.deliver(entry)
    await sender.deliverer.presence.idle()
    return outcome


async def test_read_once_per_batch_across_retries_and_replicas(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    first, other = await make_sender(), await make_sender()
    # Per attempt: mark_seen and typing_on (2); typing_on (4); typing_on on the other
    # replica (6). A failed attempt's typing is turned off (3, 5).
    first.deliverer.bot = other.deliverer.bot = FailsThenAnswers(graph, [2, 4, 6])
    batch = await emit(redis, first.keys, "u1", 1, "where is my order")
    stream = first.keys.outbound(first.keys.shard_of(batch["conversation"]))
    entry = await _read(redis, stream, first.consumer.name)

    assert isinstance(await _attempt(first, entry), RetryLater)
    assert isinstance(await _attempt(first, entry), RetryLater)
    # The retry is claimed by another replica: it knows from Redis the batch was shown read.
    await redis.xclaim(stream, GROUP, other.consumer.name, 0, [entry.id])
    assert await _attempt(other, entry) is None

    assert actions(graph) == [
        "mark_seen", "typing_on", "typing_off", "typing_on", "typing_off", "typing_on",
    ]  # fmt: skip
    assert [s["payload"]["message"]["text"] for s in graph.sent] == ["at last"]


@pytest.mark.parametrize("who,typing", [(MESSENGER, "on"), (WHATSAPP, "off")])
async def test_an_unreachable_bot_shows_the_user_nothing(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    who: tuple[str, str, str],
    typing: str,
) -> None:
    platform, account, user = who
    sender = await make_sender(
        LULL_HANDLER=f"http://127.0.0.1:{free_port()}/lull",  # nothing listens there
        LULL_SEND_MAX_ATTEMPTS="4",
        LULL_TYPING=typing,
    )
    await emit(redis, sender.keys, user, 1, "hello?", platform=platform, account=account)
    await settle(sender)
    assert await redis.xlen(sender.keys.dead()) == 1
    assert graph.presence == []


@pytest.mark.parametrize(
    "case",
    [
        (MESSENGER, "on", "mark_seen"),
        (("instagram", "ig1", "u1"), "off", "mark_seen"),
        (WHATSAPP, "off", "read"),
    ],
)
async def test_a_bot_that_answers_503_then_replies_is_read_once(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    case: tuple[tuple[str, str, str], str, str],
) -> None:
    (platform, account, user), typing, read = case
    async with FakeBot("bot-secret") as bot:
        sender = await make_sender(
            LULL_HANDLER=bot.url, LULL_HANDLER_SECRET="bot-secret", LULL_TYPING=typing
        )
        # Slow enough that presence goes out while each call is in flight.
        bot.script(statuses=(503, 503), latency_ms=200)
        await emit(redis, sender.keys, user, 1, "hello", platform=platform, account=account)
        await settle(sender)
        assert len(bot.received) == 3
    shown = actions(graph)
    assert shown.count(read) == 1, shown
    assert shown[0] == read
    assert len(graph.sent) == 1
