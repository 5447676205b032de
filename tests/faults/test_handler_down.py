"""The bot is down for longer than the retry budget: its batches become dead letters with the
reason; once it is back, `lull dead replay --all` delivers each of them exactly once.

The bot is a real aiohttp server (tests/sender/fake_bot.py) that answers 503 while down; the
Graph API is the fake one; `lull dead` runs through the real command line.
"""

from __future__ import annotations

from typing import cast

import orjson
import redis.asyncio as aioredis
from prometheus_client import generate_latest

from lull.dev.fake_graph import FakeGraph
from tests.ops import lull_dead as lull_dead_fixture
from tests.ops.lull_dead import RunDead
from tests.sender import conftest as sender_fixtures
from tests.sender.conftest import MakeSender, dead_marks, emit, sent_texts
from tests.sender.fake_bot import FakeBot

# The sender tests' fixtures: the fake Graph API and senders built on the test Redis.
graph_server = sender_fixtures.graph_server
graph = sender_fixtures.graph
sender_env = sender_fixtures.sender_env
make_sender = sender_fixtures.make_sender
lull_dead = lull_dead_fixture.lull_dead

Rows = list[tuple[bytes, dict[bytes, bytes]]]
MAX_ATTEMPTS = 3


async def test_handler_down_longer_than_the_retry_budget_then_replayed_once(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    lull_dead: RunDead,
) -> None:
    async with FakeBot("bot-secret") as bot:
        sender = await make_sender(
            LULL_HANDLER=bot.url,
            LULL_HANDLER_SECRET="bot-secret",
            LULL_SEND_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        )
        keys = sender.keys
        batches = [
            await emit(redis, keys, "u1", 1, "u1 first"),
            await emit(redis, keys, "u1", 2, "u1 second"),
            await emit(redis, keys, "u2", 1, "u2 only"),
        ]
        bot.script(statuses=(503,) * 1000)  # down for longer than any retry schedule
        await sender.drain()

        letters = cast(Rows, await redis.xrange(keys.dead()))
        assert len(letters) == 3
        for _, fields in letters:
            assert (
                fields[b"_reason"]
                == f"gave up after {MAX_ATTEMPTS} attempts: bot answered 503".encode()
            )
            assert fields[b"_group"] == b"sender"
        assert len(bot.received) == 3 * MAX_ATTEMPTS
        assert graph.sent == []
        # Finished as dead: conversation u1 did not wait forever for its first batch.
        state = keys.conversation_state("messenger:p1:u1")
        assert await redis.hget(state, "delivered") == b"2"

        bot.script()  # the bot is back
        bot.received.clear()
        code, out, _ = await lull_dead("replay", "--all")
        assert code == 0
        assert "replayed 3 dead letter(s)" in out
        assert await redis.xlen(keys.dead()) == 0
        await sender.drain()

        assert sorted(b["batch_id"] for b in bot.received) == sorted(b["batch_id"] for b in batches)
        assert sorted(sent_texts(graph)) == [
            ("u1", "echo: u1 first"),
            ("u1", "echo: u1 second"),
            ("u2", "echo: u2 only"),
        ]
        assert await dead_marks(redis, keys, *batches) == set()
        text = generate_latest(sender.registry).decode()
        assert 'lull_sender_deliveries_total{outcome="replayed"} 3.0' in text

        # Nothing is left to replay; a second run changes nothing.
        assert (await lull_dead("replay", "--all"))[:2] == (0, "replayed 0 dead letter(s)\n")
        # A second copy of a replayed batch (a replay interrupted between its XADD and its
        # XDEL, run again) is a duplicate: the bot is not asked and nothing is sent twice.
        await redis.xadd(keys.outbound(0), {"batch": orjson.dumps(batches[0])})
        await sender.drain()
    assert len(bot.received) == 3
    assert len(graph.sent) == 3
    text = generate_latest(sender.registry).decode()
    assert 'lull_sender_deliveries_total{outcome="duplicate"} 1.0' in text


async def test_a_replay_while_the_bot_is_still_down_is_dead_again_and_replayable(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, lull_dead: RunDead
) -> None:
    async with FakeBot("bot-secret") as bot:
        sender = await make_sender(
            LULL_HANDLER=bot.url,
            LULL_HANDLER_SECRET="bot-secret",
            LULL_SEND_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        )
        keys = sender.keys
        batch = await emit(redis, keys, "u1", 1, "patience")
        bot.script(statuses=(503,) * 1000)
        await sender.drain()
        for _ in range(2):  # replayed too early, twice: each time dead again, still marked
            assert (await lull_dead("replay", "--all"))[0] == 0
            await sender.drain()
            [(_, letter)] = cast(Rows, await redis.xrange(keys.dead()))
            assert letter[b"_reason"].endswith(b"bot answered 503")
            assert await dead_marks(redis, keys, batch) == {batch["batch_id"]}
        assert len(bot.received) == (1 + 2) * MAX_ATTEMPTS  # the first run and two replays
        assert graph.sent == []

        bot.script()
        assert (await lull_dead("replay", "--all"))[0] == 0
        await sender.drain()
        assert (await lull_dead("replay", "--all"))[:2] == (0, "replayed 0 dead letter(s)\n")
        await sender.drain()
    assert sent_texts(graph) == [("u1", "echo: patience")]
    assert len(bot.received) == (1 + 2) * MAX_ATTEMPTS + 1
    assert await dead_marks(redis, keys, batch) == set()
