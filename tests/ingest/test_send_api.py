"""The send API (ingest/send_api.py): its own token, hostile input refused with nothing
stored, a message stored in its conversation's order before the 202, once per key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from lull.common.batch import Batch
from lull.common.env import ConfigError, Env
from lull.common.store.api_messages import ApiSend
from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseSettings
from lull.ingest.send_api import ApiSettings, documented_routes
from tests.ingest.send_api_app import send_api_app

ADMIN_TOKEN = "0123456789abcdef0123456789abcdef"
API_TOKEN = "fedcba9876543210fedcba9876543210"
ACCOUNT = "106000000000001"
CONVERSATION = f"messenger:{ACCOUNT}:7001"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PAUSE = PauseSettings(quiet_ms=60_000, cap_ms=3_600_000)
SEND = {"replies": [{"text": "your order shipped"}]}
PATH = f"/v1/conversations/{CONVERSATION}/messages"


def _app(redis: aioredis.Redis, namespace: str, token: str | None) -> Any:
    return send_api_app(redis, Keys(namespace), {ACCOUNT}, token=token, pause=PAUSE)


@pytest.fixture
async def client(redis: aioredis.Redis, namespace: str) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """The admin app with the send API on, on a loopback TestServer."""
    async with TestClient(TestServer(_app(redis, namespace, API_TOKEN))) as test_client:
        yield test_client


async def _stored(redis: aioredis.Redis, namespace: str) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"{namespace}:*")]


async def _entries(redis: aioredis.Redis, keys: Keys) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.outbound(0)))


def _headers(key: str = "k-1", **more: str) -> dict[str, str]:
    return {**AUTH, "Idempotency-Key": key, **more}


async def test_hostile_requests_are_refused_and_store_nothing(
    client: TestClient,  # type: ignore[type-arg]
    redis: aioredis.Redis,
    namespace: str,
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Idempotency-Key": "k"}
    cases: list[tuple[str, dict[str, str], bytes, int]] = [
        (PATH, {"Idempotency-Key": "k"}, orjson.dumps(SEND), 401),
        (PATH, {"Authorization": "Bearer wrong", "Idempotency-Key": "k"}, orjson.dumps(SEND), 401),
        # The admin token pauses conversations; it cannot send.
        (PATH, admin, orjson.dumps(SEND), 401),
        ("/v1/conversations/messenger:x y:1/messages", _headers(), orjson.dumps(SEND), 400),
        ("/v1/conversations/telegram:1:2/messages", _headers(), orjson.dumps(SEND), 400),
        ("/v1/conversations/messenger:999:7001/messages", _headers(), orjson.dumps(SEND), 422),
        (PATH, AUTH, orjson.dumps(SEND), 400),
        (PATH, _headers("x" * 256), orjson.dumps(SEND), 400),
        (PATH, _headers("has space"), orjson.dumps(SEND), 400),
        (PATH, _headers(), b"{not json", 400),
        (PATH, _headers(), b"[]", 400),
        (PATH, _headers(), orjson.dumps({"replies": []}), 400),
        (PATH, _headers(), orjson.dumps({"replies": [{"txt": "x"}]}), 400),
        (PATH, _headers(), orjson.dumps({**SEND, "as": "robot"}), 400),
        (PATH, _headers(), orjson.dumps({**SEND, "extra": 1}), 400),
        (PATH, _headers(), orjson.dumps({"replies": [{"text": "x" * 70_000}]}), 413),
    ]
    for path, headers, body, status in cases:
        response = await client.post(path, data=body, headers=headers)
        assert response.status == status, (path, headers.get("Idempotency-Key"), body[:40])
        assert "error" in await response.json()
    assert await _stored(redis, namespace) == []


async def test_off_without_its_token(redis: aioredis.Redis, namespace: str) -> None:
    async with TestClient(TestServer(_app(redis, namespace, None))) as client:
        response = await client.post(PATH, json=SEND, headers=_headers())
        assert response.status == 404
        assert "LULL_API_TOKEN" in (await response.json())["error"]
        # The admin API itself still answers with its token.
        response = await client.get(
            f"/conversations/{CONVERSATION}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert response.status == 200
    assert await _stored(redis, namespace) == []


async def test_stored_before_the_202_once_per_key(
    client: TestClient,  # type: ignore[type-arg]
    redis: aioredis.Redis,
    namespace: str,
) -> None:
    keys = Keys(namespace)
    first = await client.post(PATH.replace(":", "%3A"), json=SEND, headers=_headers("order-1"))
    assert first.status == 202
    message_id = (await first.json())["id"]
    again = await client.post(PATH, json=SEND, headers=_headers("order-1"))
    assert again.status == 202
    assert (await again.json())["id"] == message_id
    assert again.headers["Idempotent-Replayed"] == "true"
    entries = await _entries(redis, keys)
    assert len(entries) == 1
    batch = Batch.decode(entries[0][1][b"batch"])
    send = ApiSend.of(batch)
    assert send is not None and send.message_id == message_id
    assert (batch.conversation, batch.messages, send.replies) == (CONVERSATION, [], SEND["replies"])
    # It took the conversation's next seq: the sender delivers it after every earlier batch.
    state = await redis.hgetall(keys.conversation_state(CONVERSATION))
    assert int(state[b"seq"]) == batch.seq == int(state[b"delivered"]) + 1

    shown = await client.get(f"/v1/messages/{message_id}", headers=AUTH)
    assert shown.status == 200
    record = await shown.json()
    assert (record["id"], record["state"], record["conversation"]) == (
        message_id, "queued", CONVERSATION,
    )  # fmt: skip
    for unknown in ("0-" + "0" * 24, "nope", "9-" + "a" * 24):
        assert (await client.get(f"/v1/messages/{unknown}", headers=AUTH)).status == 404
    # Another key is another message, after the first.
    other = await client.post(PATH, json=SEND, headers=_headers("order-2"))
    assert (await other.json())["id"] != message_id
    assert len(await _entries(redis, keys)) == 2


async def test_a_bot_is_refused_while_a_human_has_the_conversation(
    client: TestClient,  # type: ignore[type-arg]
    redis: aioredis.Redis,
    namespace: str,
) -> None:
    keys = Keys(namespace)
    human = await client.post(PATH, json={**SEND, "as": "human"}, headers=_headers("h-1"))
    assert human.status == 202
    assert await redis.exists(keys.pause(CONVERSATION)) == 1
    refused = await client.post(PATH, json=SEND, headers=_headers("b-1"))
    assert refused.status == 409
    assert len(await _entries(redis, keys)) == 1
    forced = await client.post(PATH, json={**SEND, "force": True}, headers=_headers("b-1"))
    assert forced.status == 202
    assert len(await _entries(redis, keys)) == 2


async def test_every_route_is_documented_and_every_documented_route_exists(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/v1/")
        and route.method != "HEAD"
    }  # fmt: skip
    assert served == documented_routes()
    response = await client.get("/v1/openapi.json", headers=AUTH)
    assert response.status == 200
    assert (await response.json())["openapi"].startswith("3.")


def test_the_token_needs_the_admin_site_and_its_own_value() -> None:
    bad = ((None, API_TOKEN), (ADMIN_TOKEN, ADMIN_TOKEN), (ADMIN_TOKEN, "short"))
    for admin_token, token in bad:
        env = Env({"LULL_API_TOKEN": token}, collect=True)
        ApiSettings.from_env(env, admin_token=admin_token, read_timeout_ms=1000)
        with pytest.raises(ConfigError, match="LULL_API_TOKEN"):
            env.check()
    env = Env({"LULL_API_TOKEN": API_TOKEN, "LULL_ACCESS_TOKENS": '{"1": "t"}'}, collect=True)
    settings = ApiSettings.from_env(env, admin_token=ADMIN_TOKEN, read_timeout_ms=1000)
    env.check()
    assert settings.knows("1") and not settings.knows("2")
