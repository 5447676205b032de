"""The local stack the example bots answer through: the real processor and sender on the
test Redis, the fake Graph API on loopback, user messages in Meta's Messenger shape on the
inbound stream (what ingest stores for a signed POST)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.common.store.keys import Keys
from lull.dev.fake_graph import FAKE_GRAPH, FakeGraph, create_fake_graph_app
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from lull.sender.app import Sender
from lull.sender.settings import SenderSettings

EXAMPLES = Path(__file__).parents[2] / "examples"
PAGE = "106000000000001"
SECRET = "example-bot-secret"


@dataclass
class Stack:
    """Processor and sender settings on one namespace, and the fake Graph API they send to."""

    redis: aioredis.Redis
    base_env: dict[str, str]
    graph_url: str
    graph: FakeGraph

    @property
    def keys(self) -> Keys:
        """The namespace's keys."""
        return Keys(self.base_env["LULL_NAMESPACE"])

    def sender_env(self, handler: str, **overrides: str) -> dict[str, str]:
        """A sender for handler, signing with SECRET, no rate limits, millisecond backoff."""
        return {
            **self.base_env,
            "LULL_HANDLER": handler,
            "LULL_HANDLER_SECRET": SECRET,
            "LULL_HANDLER_TIMEOUT_MS": "10000",
            "LULL_GRAPH_API_BASE": self.graph_url,
            "LULL_ACCESS_TOKENS": orjson.dumps({PAGE: "page-token"}).decode(),
            "LULL_RATE_GLOBAL": "off",
            "LULL_RATE_PER_USER": "off",
            "LULL_SEND_BACKOFF_BASE_MS": "1",
            "LULL_SEND_BACKOFF_MAX_MS": "5",
            "LULL_SEND_MAX_ATTEMPTS": "2",
            "LULL_SENDER_METRICS_PORT": "0",
            **overrides,
        }

    async def user_types(self, user: str, texts: list[str]) -> None:
        """One Messenger webhook per fragment, stored as ingest stores an accepted POST."""
        now_ms = int(time.time() * 1000)
        for n, text in enumerate(texts):
            item = {
                "sender": {"id": user}, "recipient": {"id": PAGE}, "timestamp": now_ms + n,
                "message": {"mid": f"m-{user}-{now_ms}-{n}", "text": text},
            }  # fmt: skip
            body = orjson.dumps({"object": "page", "entry": [{"id": PAGE, "time": now_ms,
                                                               "messaging": [item]}]})  # fmt: skip
            fields = {"body": body, "received_at": now_ms, "sig": "ok"}
            await self.redis.xadd(self.keys.inbound(), fields)  # type: ignore[arg-type]

    async def close_windows(self) -> int:
        """Run the processor until every window has closed; the batches emitted."""
        env = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000", **self.base_env}
        processor = Processor(self.redis, ProcessorSettings.from_env(env))
        return await processor.drain()

    async def deliver(self, handler: str, **env: str) -> None:
        """Run a sender with handler until nothing is left to deliver."""
        sender = await Sender.create(
            self.redis, SenderSettings.from_env(self.sender_env(handler, **env))
        )
        try:
            await sender.drain()
        finally:
            await sender.close()

    async def turn(self, handler: str, user: str, texts: list[str], **env: str) -> None:
        """A user types texts; the processor batches them, the sender delivers the batch."""
        await self.user_types(user, texts)
        assert await self.close_windows() == 1
        await self.deliver(handler, **env)

    def replies_to(self, user: str) -> list[dict[str, Any]]:
        """The Send API messages the fake Graph API accepted for user, in order."""
        return [
            sent["payload"]["message"]
            for sent in self.graph.sent
            if sent["payload"]["recipient"]["id"] == user
        ]

    async def dead_reasons(self) -> list[str]:
        """The reason of every dead letter."""
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]], await self.redis.xrange(self.keys.dead())
        )
        return [fields[b"_reason"].decode() for _id, fields in entries]


@pytest.fixture
async def stack(redis: aioredis.Redis, base_env: dict[str, str]) -> AsyncIterator[Stack]:
    """The stack on the test's namespace, with its own fake Graph API."""
    server = TestServer(create_fake_graph_app({PAGE: "page-token"}))
    await server.start_server()
    try:
        yield Stack(redis, base_env, str(server.make_url("")).rstrip("/"), server.app[FAKE_GRAPH])
    finally:
        await server.close()
