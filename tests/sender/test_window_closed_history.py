"""A batch finished `window_closed` leaves a `status` item in the history for each reply lull
did not send, so that the bot learns with its next batch that the user never saw them; the
items are the contract's (checked against the published schema)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from lull.dev.fake_graph import FakeGraph
from lull.sender.history_items import WINDOW_CLOSED_TITLE
from tests.contract.check import problems
from tests.ops.test_takeover import cli_env, lull, lull_json
from tests.sender.conftest import MakeSender, emit
from tests.sender.fake_bot import FakeBot
from tests.sender.test_reply_window import DAY_MS, HOUR_MS, _batch, _outcome, _sender, bot

__all__ = ["bot", "cli_env"]  # the fixtures, used by name

REPLIES = [{"text": "Sorry for the wait!"}, {"text": "Anything else?"}]


async def _history(redis: aioredis.Redis, keys: Any, conversation: str) -> list[dict[str, Any]]:
    return [orjson.loads(item) for item in await redis.lrange(keys.history(conversation), 0, -1)]


@pytest.mark.parametrize("platform", ["messenger", "whatsapp"])
async def test_each_reply_not_sent_is_a_status_item_the_bot_sees_next(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot, platform: str
) -> None:
    sender = await _sender(make_sender, bot, REPLIES)
    before_ms = int(time.time() * 1000)
    batch = await _batch(redis, sender, graph, platform, 25 * HOUR_MS)
    await sender.drain()
    assert await _outcome(redis, sender, batch) == "window_closed"
    assert graph.message_calls == 0
    user, *unsent = await _history(redis, sender.keys, batch["conversation"])
    assert (user["role"], user["mid"]) == ("user", batch["messages"][0]["mid"])
    assert [(item["role"], item["status"], item["reason"], item["text"]) for item in unsent] == [
        ("status", "failed", "window_closed", "Sorry for the wait!"),
        ("status", "failed", "window_closed", "Anything else?"),
    ]
    for item in unsent:
        assert (item["mid"], item["code"], item["title"]) == ("", None, WINDOW_CLOSED_TITLE)
        assert item["time"] >= before_ms

    # The user writes again: the bot's next batch carries the items, as the schema says.
    bot.script(body=orjson.dumps({"replies": [{"text": "Hello again!"}]}))
    await emit(redis, sender.keys, batch["user_id"], 2, "still there?", platform=platform,
               account=batch["account_id"])  # fmt: skip
    await redis.hset(sender.keys.conversation_state(batch["conversation"]), "user_last_ms",
                     int(time.time() * 1000))  # fmt: skip
    graph.wrote(batch["user_id"], int(time.time() * 1000))
    await sender.drain()
    received = bot.received[-1]
    assert problems("batch", received) == []
    assert [item.get("reason") for item in received["history"]] == [None, *["window_closed"] * 2]
    assert graph.message_calls == 1


async def test_metas_window_error_names_the_reply_it_refused(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot
) -> None:
    # lull believes the user wrote an hour ago; Meta's clock (the fake) says 25 hours.
    sender = await _sender(make_sender, bot, REPLIES)
    batch = await _batch(redis, sender, graph, "messenger", HOUR_MS)
    graph.wrote("u1", int(time.time() * 1000) - 25 * HOUR_MS)
    await sender.drain()
    assert await _outcome(redis, sender, batch) == "window_closed"
    history = await _history(redis, sender.keys, batch["conversation"])
    assert [(item["role"], item.get("text")) for item in history] == [
        ("user", "hello"),
        ("status", "Sorry for the wait!"),
        ("status", "Anything else?"),
    ]


async def test_lull_conversation_shows_the_window_closed_batch_and_the_closed_window(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    bot: FakeBot,
    *,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sender = await _sender(make_sender, bot, REPLIES)
    batch = await _batch(redis, sender, graph, "messenger", 25 * HOUR_MS)
    await sender.drain()
    conversation = batch["conversation"]

    code, out, _ = await lull(capsys, "conversation", conversation)
    assert code == 0
    seq = str(batch["seq"])
    # The outcome column widens for window_closed: the replies column stays aligned.
    assert f"last batches  seq{' ' * (len(seq) - 3)} outcome       replies  finished" in out
    assert f"              {seq:<3} window_closed 0        " in out
    assert "reply window  closed " in out
    assert "(1h ago): a reply goes out only with a tag" in out

    state = await lull_json(capsys, "conversation", conversation)
    assert state["outcomes"][0]["outcome"] == "window_closed"
    assert state["reply_window_ends_at_ms"] == batch["last_event_time"] + DAY_MS
    assert state["reply_window_ends_at_ms"] < state["read_at_ms"]
