"""Meta's 24-hour window, through a real sender against the fake Graph API (which answers
Meta's window errors when told when the user last wrote): a batch whose replies may not be
sent any more finishes `window_closed` with no call to Meta; a tag (Messenger, Instagram) or
a template (WhatsApp) goes out; the bot is told when the window ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.common.store.conversations import read_conversation
from lull.dev.fake_graph import FAKE_GRAPH, FakeGraph, create_fake_graph_app
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from lull.sender.app import Sender
from tests.conftest import FIXTURES
from tests.sender.conftest import MakeSender, emit
from tests.sender.fake_bot import FakeBot

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
ACCOUNTS = {"messenger": "p1", "instagram": "ig1", "whatsapp": "wa1"}
# A WhatsApp user is a phone number: the fake checks the format.
USERS = {"messenger": "u1", "instagram": "u1", "whatsapp": "16315551234"}
TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "#1234"}]}],
}


@pytest.fixture
async def bot() -> AsyncIterator[FakeBot]:
    async with FakeBot("window-secret") as running:
        yield running


async def _sender(make_sender: MakeSender, bot: FakeBot, replies: list[dict[str, Any]]) -> Sender:
    bot.script(body=orjson.dumps({"replies": replies}))
    return await make_sender(LULL_HANDLER=bot.url, LULL_HANDLER_SECRET="window-secret")


async def _batch(
    redis: aioredis.Redis, sender: Sender, graph: FakeGraph, platform: str, age_ms: int
) -> dict[str, Any]:
    """A batch of a user who last wrote age_ms ago, as lull and Meta (the fake) both know."""
    user = USERS[platform]
    batch = await emit(redis, sender.keys, user, 1, "hello", platform=platform,
                       account=ACCOUNTS[platform], age_ms=age_ms)  # fmt: skip
    await redis.hset(
        sender.keys.conversation_state(batch["conversation"]),
        "user_last_ms",
        batch["last_event_time"],
    )
    graph.wrote(user, batch["last_event_time"])
    return batch


async def _outcome(redis: aioredis.Redis, sender: Sender, batch: dict[str, Any]) -> str:
    state = await read_conversation(redis, sender.keys, batch["conversation"])
    return state.outcomes[0].outcome


def _finished(sender: Sender, outcome: str) -> float | None:
    return sender.registry.get_sample_value("lull_sender_deliveries_total", {"outcome": outcome})


async def _dead(redis: aioredis.Redis, sender: Sender) -> list[Any]:
    return cast(list[Any], await redis.xrange(sender.keys.dead()))


@pytest.mark.parametrize("platform", ["messenger", "instagram", "whatsapp"])
async def test_a_batch_25_hours_late_finishes_window_closed_without_calling_meta(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot, platform: str
) -> None:
    sender = await _sender(make_sender, bot, [{"text": "Sorry for the wait!"}])
    batch = await _batch(redis, sender, graph, platform, 25 * HOUR_MS)
    await sender.drain()
    # The bot was asked (it could have answered with a tag or a template), and told so.
    [received] = bot.received
    assert received["reply_window_ends_at"] == batch["last_event_time"] + DAY_MS
    # No reply, no read receipt, no typing: nothing reached Meta.
    assert (graph.message_calls, graph.presence_calls) == (0, 0)
    assert await _outcome(redis, sender, batch) == "window_closed"
    assert _finished(sender, "window_closed") == 1
    assert await _dead(redis, sender) == []
    # The user's message is in the history for the bot's next batch; no bot item, since
    # nothing was sent, but a status item that says the reply was not.
    history = await redis.lrange(sender.keys.history(batch["conversation"]), 0, -1)
    assert [orjson.loads(item)["role"] for item in history] == ["user", "status"]


@pytest.mark.parametrize("platform", ["messenger", "instagram"])
async def test_a_human_agent_tag_is_sent_after_the_window_for_7_days(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot, platform: str
) -> None:
    sender = await _sender(make_sender, bot, [{"text": "An agent here.", "tag": "HUMAN_AGENT"}])
    batch = await _batch(redis, sender, graph, platform, 25 * HOUR_MS)
    await sender.drain()
    [sent] = graph.sent
    assert sent["payload"]["messaging_type"] == "MESSAGE_TAG"
    assert sent["payload"]["tag"] == "HUMAN_AGENT"
    assert sent["payload"]["message"] == {"text": "An agent here."}
    assert await _outcome(redis, sender, batch) == "sent"


@pytest.mark.parametrize("platform", ["messenger", "instagram"])
async def test_a_human_agent_tag_past_7_days_is_not_sent(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot, platform: str
) -> None:
    sender = await _sender(make_sender, bot, [{"text": "An agent here.", "tag": "HUMAN_AGENT"}])
    batch = await _batch(redis, sender, graph, platform, 7 * DAY_MS + HOUR_MS)
    await sender.drain()
    assert graph.message_calls == 0
    assert await _outcome(redis, sender, batch) == "window_closed"
    assert await _dead(redis, sender) == []


async def test_messengers_update_tags_have_no_7_day_limit_and_instagram_has_none_of_them(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot
) -> None:
    sender = await _sender(
        make_sender, bot, [{"text": "Your order shipped.", "tag": "POST_PURCHASE_UPDATE"}]
    )
    on_messenger = await _batch(redis, sender, graph, "messenger", 10 * DAY_MS)
    on_instagram = await _batch(redis, sender, graph, "instagram", 25 * HOUR_MS)
    await sender.drain()
    assert [(s["account_id"], s["payload"]["tag"]) for s in graph.sent] == [
        ("p1", "POST_PURCHASE_UPDATE")
    ]
    assert await _outcome(redis, sender, on_messenger) == "sent"
    assert await _outcome(redis, sender, on_instagram) == "window_closed"


async def test_a_whatsapp_template_is_sent_after_the_window_and_text_beside_it_is_not(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot
) -> None:
    sender = await _sender(make_sender, bot, [{"template": TEMPLATE}])
    batch = await _batch(redis, sender, graph, "whatsapp", 25 * HOUR_MS)
    await sender.drain()
    [sent] = graph.sent
    assert sent["payload"]["type"] == "template"
    assert sent["payload"]["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": TEMPLATE["components"],
    }
    assert "context" not in sent["payload"]
    assert await _outcome(redis, sender, batch) == "sent"
    # A template and a text together: the text may not go, so neither does (whole or none).
    graph.sent.clear()
    bot.script(body=orjson.dumps({"replies": [{"template": TEMPLATE}, {"text": "And also"}]}))
    later = await emit(redis, sender.keys, USERS["whatsapp"], 2, "hello again",
                       platform="whatsapp", account="wa1", age_ms=25 * HOUR_MS)  # fmt: skip
    await sender.drain()
    assert graph.message_calls == 1  # the first batch's template only
    assert await _outcome(redis, sender, later) == "window_closed"


@pytest.mark.parametrize("platform", ["messenger", "whatsapp"])
async def test_within_the_window_replies_go_out_as_written_without_a_tag(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot, platform: str
) -> None:
    sender = await _sender(make_sender, bot, [{"text": "Hi!", "tag": "HUMAN_AGENT"}])
    batch = await _batch(redis, sender, graph, platform, 23 * HOUR_MS)
    await sender.drain()
    [sent] = graph.sent
    assert "tag" not in sent["payload"]
    if platform == "messenger":
        assert sent["payload"]["messaging_type"] == "RESPONSE"
    else:
        assert sent["payload"]["text"]["body"] == "Hi!"
    assert await _outcome(redis, sender, batch) == "sent"
    [received] = bot.received
    assert received["reply_window_ends_at"] == batch["last_event_time"] + DAY_MS


async def test_the_window_counts_from_the_users_newest_message_lull_knows(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot
) -> None:
    # A batch replayed 25 hours late, but the user wrote again an hour ago (a later batch
    # of theirs was emitted): the window is open again, counted from that message.
    sender = await _sender(make_sender, bot, [{"text": "Here it is."}])
    batch = await emit(redis, sender.keys, "u1", 1, "old", age_ms=25 * HOUR_MS)
    recent_ms = int(time.time() * 1000) - HOUR_MS
    await redis.hset(sender.keys.conversation_state(batch["conversation"]), "user_last_ms",
                     recent_ms)  # fmt: skip
    await sender.drain()
    assert [s["payload"]["message"]["text"] for s in graph.sent] == ["Here it is."]
    [received] = bot.received
    assert received["reply_window_ends_at"] == recent_ms + DAY_MS


@pytest.mark.parametrize("platform", ["messenger", "instagram", "whatsapp"])
async def test_metas_window_error_finishes_window_closed_not_a_dead_letter(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, bot: FakeBot, platform: str
) -> None:
    # lull believes the user wrote an hour ago; Meta's clock (the fake) says 25 hours.
    sender = await _sender(make_sender, bot, [{"text": "Hello"}])
    batch = await _batch(redis, sender, graph, platform, HOUR_MS)
    graph.wrote(USERS[platform], int(time.time() * 1000) - 25 * HOUR_MS)
    await sender.drain()
    assert (graph.sent, graph.message_calls) == ([], 1)
    assert await _outcome(redis, sender, batch) == "window_closed"
    assert await _dead(redis, sender) == []
    assert _finished(sender, "retried") is None


@pytest.mark.parametrize("replies", [[{"text": "Sorry!"}], [{"template": TEMPLATE}]])
async def test_a_webhook_written_25_hours_ago_through_processor_and_sender(
    redis: aioredis.Redis,
    base_env: dict[str, str],
    make_sender: MakeSender,
    bot: FakeBot,
    replies: list[dict[str, Any]],
) -> None:
    # Meta delivers (or a replay brings) a message the user wrote 25 hours ago: the processor
    # records when they wrote (user_last_ms), the sender keeps the window from there.
    env = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000", **base_env}
    processor = Processor(redis, ProcessorSettings.from_env(env))
    doc = orjson.loads((FIXTURES / "whatsapp" / "text.json").read_bytes())
    written_s = int(time.time()) - 25 * 3600
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(written_s)
    fields = {"body": orjson.dumps(doc), "received_at": int(time.time() * 1000)}
    await redis.xadd(processor.keys.inbound(), fields)  # type: ignore[arg-type]
    assert await processor.drain() == 1
    server = TestServer(create_fake_graph_app(None))  # any token: the fixture's phone id
    await server.start_server()
    try:
        graph: FakeGraph = server.app[FAKE_GRAPH]
        bot.script(body=orjson.dumps({"replies": replies}))
        sender = await make_sender(
            LULL_HANDLER=bot.url,
            LULL_HANDLER_SECRET="window-secret",
            LULL_GRAPH_API_BASE=str(server.make_url("")).rstrip("/"),
            LULL_ACCESS_TOKENS=orjson.dumps({"*": "wa-token"}).decode(),
        )
        await sender.drain()
    finally:
        await server.close()
    [received] = bot.received
    assert received["reply_window_ends_at"] == written_s * 1000 + DAY_MS
    outcome = await _outcome(redis, sender, received)
    if "template" in replies[0]:
        assert [s["payload"]["type"] for s in graph.sent] == ["template"]
        assert outcome == "sent"
    else:
        assert (graph.message_calls, graph.presence_calls) == (0, 0)
        assert outcome == "window_closed"
    assert await _dead(redis, sender) == []
