"""A WhatsApp user without a phone number, through the real processor and sender: batched
under their business-scoped user id, answered with `recipient` (Meta's BSUID page)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.common.store.keys import Keys
from lull.dev.fake_graph import FAKE_GRAPH, FakeGraph, create_fake_graph_app
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.conftest import FIXTURES
from tests.processor.windowing import batches
from tests.sender.conftest import MakeSender

PHONE_ID, PHONE, BSUID = "106540352242922", "16315551234", "US.13491208655302741918"


@pytest.fixture
async def any_token_graph() -> AsyncIterator[TestServer]:
    """A fake Graph API taking any token (the fixtures' phone number id has none in TOKENS)."""
    server = TestServer(create_fake_graph_app(None))
    await server.start_server()
    yield server
    await server.close()


async def ingest(redis: aioredis.Redis, keys: Keys, fixture: str) -> None:
    doc = orjson.loads((FIXTURES / "whatsapp" / f"{fixture}.json").read_bytes())
    # Written now: the fixture's 2025 time is past Meta's 24-hour window, not answered.
    for message in doc["entry"][0]["changes"][0]["value"]["messages"]:
        message["timestamp"] = str(int(time.time()))
    fields = {"body": orjson.dumps(doc), "received_at": int(time.time() * 1000)}
    await redis.xadd(keys.inbound(), fields)  # type: ignore[arg-type]


# (fixture, the user id the batch carries, the field the reply is addressed with)
CASES = [
    ("text_username", BSUID, {"recipient": BSUID}),
    # With both ids the phone number stays the key and is what the reply goes to.
    ("text_bsuid_and_phone", PHONE, {"to": PHONE}),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
async def test_user_is_batched_and_answered_by_the_id_meta_gave(
    redis: aioredis.Redis,
    base_env: dict[str, str],
    make_sender: MakeSender,
    any_token_graph: TestServer,
    case: tuple[str, str, dict[str, str]],
) -> None:
    fixture, user, address = case
    env = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000", **base_env}
    processor = Processor(redis, ProcessorSettings.from_env(env))
    await ingest(redis, processor.keys, fixture)
    assert await processor.drain() == 1
    [batch] = await batches(redis, processor.keys)
    assert (batch["user_id"], batch["conversation"]) == (user, f"whatsapp:{PHONE_ID}:{user}")

    sender = await make_sender(
        LULL_GRAPH_API_BASE=str(any_token_graph.make_url("")).rstrip("/"),
        LULL_ACCESS_TOKENS=orjson.dumps({"*": "wa-token"}).decode(),
    )
    await sender.drain()
    graph: FakeGraph = any_token_graph.app[FAKE_GRAPH]
    [sent] = graph.sent  # the fake refuses a BSUID in `to` and a phone number in `recipient`
    payload = sent["payload"]
    assert {k: payload[k] for k in ("to", "recipient") if k in payload} == address
    assert payload["context"] == {"message_id": batch["messages"][0]["mid"]}
    assert await redis.xlen(sender.keys.dead()) == 0
