"""A WhatsApp reply that was accepted and later reported `failed`, through the real processor
and sender: matched to its conversation, counted and logged once however often Meta sends
the status, shown by `lull stats`, and seen by the bot in the next batch's history."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from lull.common.store.keys import Keys
from lull.dev.fake_graph import FAKE_GRAPH, FakeGraph, create_fake_graph_app
from lull.ops.stats import collect
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.conftest import FIXTURES
from tests.sender.conftest import MakeSender
from tests.sender.fake_bot import FakeBot

PHONE_ID, PHONE = "106540352242922", "16315551234"
CONVERSATION = f"whatsapp:{PHONE_ID}:{PHONE}"
FAILURES = "lull_processor_delivery_failures_total"


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((FIXTURES / "whatsapp" / f"{name}.json").read_bytes())
    return doc


def user_text(mid: str, text: str | None = None) -> bytes:
    """The fixtures' text message from PHONE, with its own message id (and text)."""
    doc = fixture("text")
    message = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = mid
    # Written now: the fixture's 2025 time is past Meta's 24-hour window, not answered.
    message["timestamp"] = str(int(time.time()))
    if text is not None:
        message["text"]["body"] = text
    return orjson.dumps(doc)


def failed_status(message_id: str) -> bytes:
    """Meta's failed status (131026, message undeliverable) for message_id."""
    doc = fixture("statuses_failed_undeliverable")
    doc["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = message_id
    return orjson.dumps(doc)


async def ingest(redis: aioredis.Redis, keys: Keys, body: bytes) -> None:
    fields = {"body": body, "received_at": int(time.time() * 1000)}
    await redis.xadd(keys.inbound(), fields)  # type: ignore[arg-type]


async def history(redis: aioredis.Redis, keys: Keys) -> list[dict[str, Any]]:
    return [orjson.loads(item) for item in await redis.lrange(keys.history(CONVERSATION), 0, -1)]


@pytest.fixture
async def any_token_graph() -> AsyncIterator[TestServer]:
    server = TestServer(create_fake_graph_app(None))
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def bot() -> AsyncIterator[FakeBot]:
    async with FakeBot("") as started:
        yield started


@pytest.fixture
def processor(redis: aioredis.Redis, base_env: dict[str, str]) -> Processor:
    env = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000", **base_env}
    return Processor(redis, ProcessorSettings.from_env(env))


async def test_failed_reply_is_matched_counted_once_and_shown_to_the_bot(
    redis: aioredis.Redis,
    processor: Processor,
    make_sender: MakeSender,
    any_token_graph: TestServer,
    bot: FakeBot,
) -> None:
    keys = processor.keys
    sender = await make_sender(
        LULL_HANDLER=bot.url,
        LULL_GRAPH_API_BASE=str(any_token_graph.make_url("")).rstrip("/"),
        LULL_ACCESS_TOKENS=orjson.dumps({"*": "wa-token"}).decode(),
    )
    await ingest(redis, keys, user_text("wamid.in_1"))
    assert await processor.drain() == 1
    await sender.drain()
    graph: FakeGraph = any_token_graph.app[FAKE_GRAPH]
    [sent] = graph.sent
    wamid = sent["message_id"]
    # The reply is in the history under the id WhatsApp gave it, and remembered for a day.
    assert history_roles(await history(redis, keys)) == [("user", "wamid.in_1"), ("bot", wamid)]
    assert 0 < await redis.ttl(keys.sent_message(wamid)) <= 86_400

    # Meta reports the failure; the same status comes twice in one read and once more later.
    await ingest(redis, keys, failed_status(wamid))
    await ingest(redis, keys, failed_status(wamid))
    with capture_logs() as logs:
        assert await processor.drain() == 0  # a status never opens a window
        await ingest(redis, keys, failed_status(wamid))
        assert await processor.drain() == 0
    labels = {"platform": "whatsapp", "code": "131026", "matched": "yes"}
    assert processor.registry.get_sample_value(FAILURES, labels) == 1
    [logged] = [entry for entry in logs if entry["event"] == "reply not delivered"]
    # The first batch of the conversation's life, whose seq starts at a base from the clock.
    delivered = int(await redis.hget(keys.conversation_state(CONVERSATION), "delivered") or -1)
    assert (logged["conversation"], logged["seq"], logged["code"]) == (
        CONVERSATION,
        delivered,
        131026,
    )
    assert (logged["message_id"], logged["log_level"]) == (wamid, "warning")
    items = await history(redis, keys)
    assert history_roles(items) == [("user", "wamid.in_1"), ("bot", wamid), ("status", wamid)]
    assert items[-1] == {
        "role": "status", "status": "failed", "mid": wamid, "time": 1763800360000,
        "code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
        "details": "Unable to deliver message. Reasons can include: The recipient phone number "
        "is not a WhatsApp phone number.",
    }  # fmt: skip
    assert await redis.xlen(keys.outbound(0)) == 1  # still only the first batch

    # `lull stats` shows it.
    stats = await collect(redis, keys)
    [shown] = stats.delivery_failures
    assert (shown.conversation, shown.seq, shown.code, shown.message_id) == (
        CONVERSATION, delivered, 131026, wamid
    )  # fmt: skip

    # The user writes again: the bot's next batch carries the failure in its history.
    await ingest(redis, keys, user_text("wamid.in_2"))
    assert await processor.drain() == 1
    await sender.drain()
    assert len(bot.received) == 2
    assert history_roles(bot.received[1]["history"])[-1] == ("status", wamid)


def history_roles(items: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(item["role"], item.get("mid")) for item in items]


async def test_failure_of_a_message_lull_did_not_send_is_counted_once_without_history(
    redis: aioredis.Redis, processor: Processor
) -> None:
    keys = processor.keys
    for _ in range(2):
        await ingest(redis, keys, orjson.dumps(fixture("statuses_failed_bsuid")))
        assert await processor.drain() == 0
    labels = {"platform": "whatsapp", "code": "131026", "matched": "no"}
    assert processor.registry.get_sample_value(FAILURES, labels) == 1
    [shown] = (await collect(redis, keys)).delivery_failures
    assert (shown.conversation, shown.message_id) == (None, "wamid.statuses_failed_bsuid_1")
    assert [key async for key in redis.scan_iter(match=f"{keys.namespace}:*:h:*")] == []


async def test_message_ids_survive_a_retry_between_two_sends(
    redis: aioredis.Redis,
    processor: Processor,
    make_sender: MakeSender,
    any_token_graph: TestServer,
    bot: FakeBot,
) -> None:
    # A 4500-character echo is two WhatsApp messages; the account limit lets one through per
    # 100 ms, so the batch is retried between them from the send state saved in Redis.
    keys = processor.keys
    sender = await make_sender(
        LULL_HANDLER=bot.url,
        LULL_GRAPH_API_BASE=str(any_token_graph.make_url("")).rstrip("/"),
        LULL_ACCESS_TOKENS=orjson.dumps({"*": "wa-token"}).decode(),
        LULL_RATE_GLOBAL="1/100ms",
    )
    await ingest(redis, keys, user_text("wamid.long", " ".join(["word"] * 900) + "s"))
    assert await processor.drain() == 1
    await sender.drain()
    wamids = [s["message_id"] for s in any_token_graph.app[FAKE_GRAPH].sent]
    assert len(wamids) == 2
    assert sender.registry.get_sample_value(
        "lull_sender_rate_limit_waits_total", {"scope": "account"}
    )
    bot_items = [item for item in await history(redis, keys) if item["role"] == "bot"]
    assert [item["mid"] for item in bot_items] == wamids
    for wamid in wamids:
        assert await redis.exists(keys.sent_message(wamid))
