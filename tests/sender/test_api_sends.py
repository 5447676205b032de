"""Send API messages through the real sender (and the real admin app): in the
conversation's order, once per Idempotency-Key, with the pause rules, their state kept."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseAction, PauseSettings, PauseStore
from lull.dev.fake_graph import FakeGraph
from tests.ingest.send_api_app import send_api_app
from tests.sender.conftest import TOKENS, MakeSender, emit, sent_texts
from tests.sender.test_takeover import RecordingBot, history, outcome, with_bot

CONVERSATION = "messenger:p1:u1"
API_TOKEN = "fedcba9876543210fedcba9876543210"
PATH = f"/v1/conversations/{CONVERSATION}/messages"
PAUSE = PauseSettings(quiet_ms=60_000, cap_ms=3_600_000)


class SilentBot(RecordingBot):
    """Answers nothing now (it answers later, through the send API)."""

    async def __call__(self, batch: dict[str, Any], reached: Any = None) -> list[dict[str, Any]]:
        self.received.append(batch)
        return []


@pytest.fixture
async def api(redis: aioredis.Redis, namespace: str) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """The admin app with the send API on, on the test Redis."""
    app = send_api_app(redis, Keys(namespace), TOKENS, token=API_TOKEN, pause=PAUSE)
    async with TestClient(TestServer(app)) as client:
        yield client


async def post(
    api: TestClient,  # type: ignore[type-arg]
    text: str,
    key: str,
    **more: Any,
) -> str:
    """Send one text through the API; its message id."""
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": key}
    response = await api.post(PATH, json={"replies": [{"text": text}], **more}, headers=headers)
    assert response.status == 202, await response.text()
    message_id: str = (await response.json())["id"]
    return message_id


async def fresh_life(redis: aioredis.Redis, keys: Keys) -> None:
    """The conversation's state as emit() expects it: a life whose seq starts at 0."""
    await redis.hset(keys.conversation_state(CONVERSATION), mapping={"seq": 0, "delivered": 0})


async def state(api: TestClient, message_id: str) -> dict[str, Any]:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    response = await api.get(f"/v1/messages/{message_id}", headers=headers)
    assert response.status == 200
    record: dict[str, Any] = await response.json()
    return record


async def test_a_later_answer_is_sent_once_in_order_with_the_batches(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    bot = RecordingBot()
    sender = await with_bot(make_sender, bot)
    keys = sender.keys
    # Batch 1 is closed and not delivered yet when the API message comes: it goes after it.
    await emit(redis, keys, "u1", 1, "where is my order?")
    message_id = await post(api, "it ships tomorrow", "order-42")
    # A retried POST (the flow timed out waiting for the 202): the same message.
    assert await post(api, "it ships tomorrow", "order-42") == message_id
    assert (await state(api, message_id))["state"] == "queued"
    # The user's next batch, closed after the API message: it comes after it.
    await emit(redis, keys, "u1", 3, "thanks")
    await sender.drain()
    assert sent_texts(graph) == [
        ("u1", "where is my order? (1)"),
        ("u1", "it ships tomorrow"),
        ("u1", "thanks (1)"),
    ]
    assert [b["text"] for b in bot.received] == ["where is my order?", "thanks"]
    record = await state(api, message_id)
    assert record["state"] == "sent"
    assert record["message_ids"] == [graph.sent[1]["message_id"]]
    assert await history(redis, keys) == [
        ("user", "where is my order?"), ("bot", "where is my order? (1)"),
        ("bot", "it ships tomorrow"), ("user", "thanks"), ("bot", "thanks (1)"),
    ]  # fmt: skip
    # Delivered once: the entry again (a claim, a crash before the ack) is a duplicate.
    await sender.drain()
    assert len(graph.sent) == 3


async def test_a_bot_that_answers_later_posts_its_reply_before_the_next_batch(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    bot = SilentBot()
    sender = await with_bot(make_sender, bot)
    keys = sender.keys
    await emit(redis, keys, "u1", 1, "book a table")
    await sender.drain()
    assert graph.sent == []
    message_id = await post(api, "booked for 8pm", "booking-1")
    await emit(redis, keys, "u1", 3, "great")
    await sender.drain()
    assert sent_texts(graph) == [("u1", "booked for 8pm")]
    assert outcome(sender, "sent") == 1
    assert (await state(api, message_id))["state"] == "sent"


async def test_a_human_send_pauses_the_bot_and_is_recorded_as_the_humans(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    bot = RecordingBot()
    sender = await with_bot(make_sender, bot)
    keys = sender.keys
    await fresh_life(redis, keys)
    message_id = await post(api, "Ana here, let me check", "desk-1", **{"as": "human"})
    await sender.drain()
    assert sent_texts(graph) == [("u1", "Ana here, let me check")]
    assert (await state(api, message_id))["state"] == "sent"
    assert await history(redis, keys) == [("human", "Ana here, let me check")]
    # The bot stays out while the human has the conversation.
    await emit(redis, keys, "u1", 2, "ok thanks")
    await sender.drain()
    assert bot.received == [] and len(graph.sent) == 1
    assert outcome(sender, "paused") == 1


async def test_a_bots_message_caught_by_a_pause_is_not_sent_and_says_so(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    sender = await with_bot(make_sender, RecordingBot())
    message_id = await post(api, "your code is 1234", "code-1")
    # A human took the conversation after the accept, before the send.
    await PauseStore(redis, sender.keys, PAUSE).apply(CONVERSATION, PauseAction.HUMAN)
    forced = await post(api, "the shop closes at 6", "notice-1", force=True)
    await sender.drain()
    assert sent_texts(graph) == [("u1", "the shop closes at 6")]
    assert (await state(api, message_id))["state"] == "paused"
    assert (await state(api, forced))["state"] == "sent"


async def test_a_message_that_cannot_be_sent_fails_with_its_reason(
    make_sender: MakeSender,
    graph: FakeGraph,
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    sender = await with_bot(make_sender, RecordingBot())
    sender.deliverer.settings = sender.deliverer.settings.__class__(
        **{**sender.deliverer.settings.__dict__, "max_sends_per_batch": 1}
    )
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": "two"}
    body = {"replies": [{"text": "one"}, {"text": "two"}]}
    response = await api.post(PATH, data=orjson.dumps(body), headers=headers)
    message_id = (await response.json())["id"]
    await sender.drain()
    assert graph.sent == []
    record = await state(api, message_id)
    assert record["state"] == "failed"
    assert "LULL_MAX_SENDS_PER_BATCH" in record["reason"]


async def test_an_api_message_supersedes_no_batch(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    # LULL_SUPERSEDE answers only the newest closed batch; an API message is no batch of the
    # user's, so the batch before it is still answered.
    sender = await make_sender(LULL_SUPERSEDE="1")
    sender.deliverer.bot = RecordingBot()
    await emit(redis, sender.keys, "u1", 1, "hello")
    await post(api, "welcome back", "greeting-1")
    await sender.drain()
    assert sent_texts(graph) == [("u1", "hello (1)"), ("u1", "welcome back")]
    assert outcome(sender, "superseded") == 0


async def test_a_message_after_the_24_hour_window_ends_window_closed_unsent(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    sender = await with_bot(make_sender, RecordingBot())
    keys = sender.keys
    day_ago_ms = int(time.time() * 1000) - 25 * 3600 * 1000
    await redis.hset(
        keys.conversation_state(CONVERSATION),
        mapping={"seq": 0, "delivered": 0, "user_last_ms": day_ago_ms},
    )
    message_id = await post(api, "still there?", "late-1")
    await sender.drain()
    assert graph.sent == []
    assert (await state(api, message_id))["state"] == "window_closed"
