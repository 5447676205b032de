"""Sender test helpers: a fake Graph API on loopback, batches on the outbound stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.common.store.keys import Keys
from lull.dev.fake_graph import FAKE_GRAPH, FakeGraph, create_fake_graph_app
from lull.sender.app import Sender
from lull.sender.settings import SenderSettings

TOKENS = {"p1": "page-token", "ig1": "ig-token", "wa1": "wa-token"}
MakeSender = Callable[..., Awaitable[Sender]]


@pytest.fixture
async def graph_server() -> AsyncIterator[TestServer]:
    """The fake Graph API, accepting TOKENS only."""
    server = TestServer(create_fake_graph_app(TOKENS))
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def graph(graph_server: TestServer) -> FakeGraph:
    """The fake's recorded state."""
    return graph_server.app[FAKE_GRAPH]


@pytest.fixture
def sender_env(base_env: dict[str, str], graph_server: TestServer) -> dict[str, str]:
    """A sender with echo, no rate limits and millisecond backoff."""
    return {
        **base_env,
        "LULL_HANDLER": "echo",
        "LULL_GRAPH_API_BASE": str(graph_server.make_url("")).rstrip("/"),
        "LULL_ACCESS_TOKENS": orjson.dumps(TOKENS).decode(),
        "LULL_RATE_GLOBAL": "off",
        "LULL_RATE_PER_USER": "off",
        "LULL_SEND_RATE_PER_USER": "off",
        "LULL_SEND_BACKOFF_BASE_MS": "1",
        "LULL_SEND_BACKOFF_MAX_MS": "5",
        "LULL_SENDER_METRICS_PORT": "0",
    }


@pytest.fixture
async def make_sender(
    redis: aioredis.Redis, sender_env: dict[str, str]
) -> AsyncIterator[MakeSender]:
    """Build senders on the test Redis; all are closed afterwards."""
    made: list[Sender] = []

    async def make(**overrides: str) -> Sender:
        sender = await Sender.create(redis, SenderSettings.from_env({**sender_env, **overrides}))
        made.append(sender)
        return sender

    yield make
    for sender in made:
        await sender.close()


async def emit(
    redis: aioredis.Redis,
    keys: Keys,
    user: str,
    seq: int,
    text: str,
    *,
    platform: str = "messenger",
    account: str = "p1",
    age_ms: int = 0,
    paused: bool = False,
) -> dict[str, Any]:
    """Put a batch on its outbound stream as the processor's close script would (in a life
    whose seq starts at 0); the user wrote its message age_ms ago; paused: stamped as closed
    while a human had it."""
    conversation = f"{platform}:{account}:{user}"
    shard = keys.shard_of(conversation)
    mid = f"{user}-{seq}"
    t = int(time.time() * 1000) - age_ms
    batch = {
        "batch_id": f"{conversation}:{seq}", "seq": seq, "platform": platform,
        "account_id": account, "user_id": user, "conversation": conversation,
        "messages": [{"mid": mid, "event_time": t, "received_at": t, "kind": "text",
                      "text": text, "attachments": [], "raw": {}}],
        "text": text, "first_event_time": t, "last_event_time": t, "opened_at": t,
        "closed_at": t, "close_reason": "gap", "version": 1,
    }  # fmt: skip
    if paused:
        batch["paused"] = True
    pipe = redis.pipeline(transaction=False)
    pipe.xadd(keys.outbound(shard), {"batch": orjson.dumps(batch)})
    state = keys.conversation_state(conversation)
    pipe.hsetnx(state, "delivered", 0)
    pipe.hset(state, "seq", seq)
    await pipe.execute()
    return batch


def sent_texts(graph: FakeGraph) -> list[tuple[str, str]]:
    """(recipient, text) of every accepted Messenger or Instagram send, in order."""
    return [
        (s["payload"]["recipient"]["id"], s["payload"]["message"].get("text", ""))
        for s in graph.sent
        if "messaging_product" not in s["payload"]
    ]


async def dead_marks(redis: aioredis.Redis, keys: Keys, *batches: dict[str, Any]) -> set[str]:
    """The batch ids of these batches that are marked finished as dead (a replay of them is
    delivered): a field of their conversation's state."""
    marked: set[str] = set()
    for batch in batches:
        state = keys.conversation_state(batch["conversation"])
        if await redis.hexists(state, keys.dead_batch_field(batch["seq"])):
            marked.add(batch["batch_id"])
    return marked
