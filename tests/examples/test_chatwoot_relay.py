"""examples/chatwoot_relay: a Chatwoot agent's reply reaches the user through lull's send
API as a human's, once, and the bot stays out while the agent has the conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from examples.chatwoot_relay.relay import Config, create_app
from lull.common.store.pauses import PauseSettings
from tests.examples.conftest import PAGE, Stack
from tests.ingest.send_api_app import send_api_app

API_TOKEN = "fedcba9876543210fedcba9876543210"
RELAY_TOKEN = "relay-secret"
USER = "7001"
CONVERSATION = f"messenger:{PAGE}:{USER}"
PAUSE = PauseSettings(quiet_ms=60_000, cap_ms=3_600_000)


def agent_message(message_id: int, text: str, **more: Any) -> dict[str, Any]:
    """A Chatwoot message_created event as its webhook reference shows it."""
    event = {
        "event": "message_created", "id": message_id, "content": text,
        "message_type": "outgoing", "content_type": "text", "private": False,
        "sender": {"id": 1, "name": "Ana", "type": "user"},
        "conversation": {"id": 10, "inbox_id": 1, "custom_attributes": {},
                         "contact_inbox": {"id": 12, "source_id": CONVERSATION}},
        "account": {"id": 1, "name": "Acme Inc"},
    }  # fmt: skip
    return {**event, **more}


@pytest.fixture
async def relay(stack: Stack, redis: aioredis.Redis) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """The relay, pointing at lull's admin app with the send API on."""
    admin = send_api_app(redis, stack.keys, {PAGE}, token=API_TOKEN, pause=PAUSE)
    async with TestServer(admin) as lull_admin:
        config = Config(str(lull_admin.make_url("")).rstrip("/"), API_TOKEN, RELAY_TOKEN)
        async with TestClient(TestServer(create_app(config))) as client:
            yield client


async def test_an_agents_reply_is_sent_once_as_the_humans_and_the_bot_steps_aside(
    stack: Stack,
    relay: TestClient,  # type: ignore[type-arg]
) -> None:
    await stack.turn("echo", USER, ["where is my parcel?"])
    path = f"/chatwoot?token={RELAY_TOKEN}"
    for _ in range(2):  # Chatwoot sends the event again: one message
        response = await relay.post(path, json=agent_message(118, "Ana here: it left today"))
        assert response.status == 200
    # Not relayed: a private note, the user's own message, a wrong token.
    assert (await relay.post(path, json=agent_message(119, "note", private=True))).status == 204
    incoming = agent_message(120, "hi", message_type="incoming")
    assert (await relay.post(path, json=incoming)).status == 204
    assert (await relay.post("/chatwoot?token=x", json=agent_message(121, "x"))).status == 401
    await stack.deliver("echo")
    assert [m["text"] for m in stack.replies_to(USER)] == [
        "where is my parcel?", "Ana here: it left today",
    ]  # fmt: skip
    # The agent has the conversation: the user's next turn is not answered by the bot.
    await stack.turn("echo", USER, ["thanks!"])
    assert len(stack.replies_to(USER)) == 2
