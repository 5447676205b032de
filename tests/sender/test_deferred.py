"""A bot that answers later: 202 (or `{"defer": true}` from a python: handler) finishes the
batch as deferred, typing stays on until the send API's message is sent or
LULL_DEFER_TYPING_MS passes, and the later answer comes in order before the next batch's."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from lull.common.conversation import Conversation
from lull.common.store.api_messages import ApiMessageStore, ApiSend, new_message_id
from lull.common.store.conversations import read_conversation
from lull.common.store.keys import Keys
from lull.dev.fake_graph import FakeGraph
from lull.sender.bot import DEFER, PythonBot
from tests.sender.conftest import MakeSender, emit, sent_texts
from tests.sender.fake_bot import FakeBot
from tests.sender.test_presence import actions
from tests.sender.test_takeover import history, outcome

SECRET = "bot-secret"
CONVERSATION = "messenger:p1:u1"


async def accept(redis: aioredis.Redis, keys: Keys, text: str, key: str) -> str:
    """What the send API stores for one text (ingest/send_api.py)."""
    store = ApiMessageStore(redis, keys)
    message_id = new_message_id(keys, CONVERSATION)
    send = ApiSend(message_id, "bot", False, [{"text": text}])
    accepted = await store.accept(
        Conversation.parse(CONVERSATION), key, send, conversation_ttl_s=3600
    )
    return accepted.message_id


async def test_an_http_bot_answering_202_is_deferred_and_its_later_answer_comes_in_order(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    async with FakeBot(SECRET) as bot:
        bot.script(statuses=(202,))
        sender = await make_sender(LULL_HANDLER=bot.url, LULL_HANDLER_SECRET=SECRET)
        keys = sender.keys
        await emit(redis, keys, "u1", 1, "book a table for two")
        await sender.drain()
        assert graph.sent == []
        assert outcome(sender, "deferred") == 1
        state = await read_conversation(redis, keys, CONVERSATION)
        assert state.outcomes[0].outcome == "deferred"
        assert await history(redis, keys) == [("user", "book a table for two")]
        # Typing stays on for the answer to come: no typing_off.
        await graph.wait_presence(2)
        assert actions(graph) == ["mark_seen", "typing_on"]
        assert sender.deliverer.deferred_typing.waiting == 1

        await accept(redis, keys, "booked for 8pm", "booking-1")
        await emit(redis, keys, "u1", 3, "great")
        await sender.drain()
        assert sent_texts(graph) == [("u1", "booked for 8pm"), ("u1", "echo: great")]
        assert sender.deliverer.deferred_typing.waiting == 0
        await sender.deliverer.presence.idle()
        assert "typing_off" not in actions(graph)


async def test_typing_ends_when_the_deferred_answer_does_not_come_in_time(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    async with FakeBot(SECRET) as bot:
        bot.script(statuses=(202,))
        sender = await make_sender(
            LULL_HANDLER=bot.url,
            LULL_HANDLER_SECRET=SECRET,
            LULL_DEFER_TYPING_MS="120",
            LULL_TYPING_REFRESH_MS="30",
        )
        await emit(redis, sender.keys, "u1", 1, "anyone?")
        await sender.drain()
        # Until the deferred typing has ended on its own.
        await sender.deliverer.presence.idle()
        shown = actions(graph)
        assert shown[:2] == ["mark_seen", "typing_on"]
        assert shown[-1] == "typing_off"
        assert shown.count("typing_on") >= 2  # refreshed meanwhile
        assert sender.deliverer.deferred_typing.waiting == 0


async def test_a_python_handler_defers_with_defer_true(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    async def later(_batch: dict[str, Any]) -> dict[str, Any]:
        return {DEFER: True}

    sender = await make_sender(LULL_DEFER_TYPING_MS="0")
    sender.deliverer.bot = PythonBot(later, timeout_ms=1000)
    await emit(redis, sender.keys, "u1", 1, "track my parcel")
    await sender.drain()
    assert graph.sent == [] and outcome(sender, "deferred") == 1
    assert sender.deliverer.deferred_typing.waiting == 0
