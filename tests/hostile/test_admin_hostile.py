"""The admin API under hostile requests from a client that holds the token (a compromised
CRM) or not: every one is refused with a 4xx, promptly, and nothing of it is applied; a
trickling or stalled body is 408 within the read timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from lull.common.conversation_control import ConversationControl
from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseSettings
from lull.ingest.admin_api import AdminMetrics, AdminSettings, create_admin_app
from tests.hostile.raw_http import exchange, status_of

TOKEN: Final = "hostile-admin-token-0123456789"
AUTH: Final = {"Authorization": f"Bearer {TOKEN}"}
CONVERSATION: Final = "messenger:106000000000001:7001"
PAUSE: Final = f"/conversations/{CONVERSATION}/pause"
READ_TIMEOUT_MS: Final = 300
AdminClient = TestClient[aiohttp.web.Request, aiohttp.web.Application]

# name: (method, path, headers, body, expected status)
REQUESTS: dict[str, tuple[str, str, dict[str, str], bytes | None, int]] = {
    "body_over_4_kib": ("POST", PAUSE, AUTH, b'{"by": "' + b"a" * 5000 + b'"}', 413),
    "by_201_chars": ("POST", PAUSE, AUTH, b'{"by": "' + b"a" * 201 + b'"}', 400),
    "by_not_a_string": ("POST", PAUSE, AUTH, b'{"by": ["Ann"]}', 400),
    "by_nested_1000_deep": ("POST", PAUSE, AUTH, b'{"by": ' + b"[" * 1000 + b"]" * 1000 + b"}",
                            400),
    "not_json": ("POST", PAUSE, AUTH, b"\x00\xff\xfe", 400),
    "json_array": ("POST", PAUSE, AUTH, b"[1, 2]", 400),
    "json_string": ("POST", PAUSE, AUTH, b'"pause"', 400),
    "unknown_key": ("POST", PAUSE, AUTH, b'{"for_s": 60, "until": 1}', 400),
    "for_s_true": ("POST", PAUSE, AUTH, b'{"for_s": true}', 400),
    "for_s_float": ("POST", PAUSE, AUTH, b'{"for_s": 60.5}', 400),
    "for_s_10_to_30": ("POST", PAUSE, AUTH, b'{"for_s": 1000000000000000000000000000000}', 400),
    "for_s_negative": ("POST", PAUSE, AUTH, b'{"for_s": -60}', 400),
    "escape_in_conversation": ("POST", "/conversations/messenger:1:%1b%5b2J/pause", AUTH, None,
                               400),
    "nul_in_conversation": ("POST", "/conversations/messenger:1:a%00b/pause", AUTH, None, 400),
    "space_in_conversation": ("POST", "/conversations/messenger:1:a%20b/pause", AUTH, None, 400),
    "conversation_5_kb": ("POST", f"/conversations/messenger:1:{'7' * 5000}/pause", AUTH, None,
                          400),
    "unknown_platform": ("POST", "/conversations/telegram:1:2/pause", AUTH, None, 400),
    "no_token": ("POST", PAUSE, {}, b'{"for_s": 60}', 401),
    "token_7_kb": ("POST", PAUSE, {"Authorization": "Bearer " + "t" * 7000}, None, 401),
    "token_prefix": ("POST", PAUSE, {"Authorization": f"Bearer {TOKEN[:-1]}"}, None, 401),
    "token_in_query": ("POST", f"{PAUSE}?token={TOKEN}", {}, None, 401),
    "basic_scheme": ("POST", PAUSE, {"Authorization": f"Basic {TOKEN}"}, None, 401),
    "unknown_action": ("POST", f"/conversations/{CONVERSATION}/delete", AUTH, None, 404),
    "get_on_pause": ("GET", PAUSE, AUTH, None, 405),
}  # fmt: skip


@pytest.fixture
async def admin(redis: aioredis.Redis, namespace: str) -> AsyncIterator[AdminClient]:
    takeover = ConversationControl(redis, Keys(namespace), PauseSettings(60_000, 3_600_000))
    settings = AdminSettings(token=TOKEN, read_timeout_ms=READ_TIMEOUT_MS)
    app = create_admin_app(settings, takeover, AdminMetrics(CollectorRegistry()))
    async with TestClient(TestServer(app)) as client:
        yield client


async def nothing_applied(redis: aioredis.Redis, namespace: str) -> None:
    assert await redis.keys(f"{namespace}*") == []


@pytest.mark.parametrize("request_", REQUESTS.values(), ids=REQUESTS.keys())
async def test_each_hostile_request_is_refused_and_nothing_applied(
    admin: AdminClient,
    redis: aioredis.Redis,
    namespace: str,
    request_: tuple[str, str, dict[str, str], bytes | None, int],
) -> None:
    method, path, headers, body, status = request_
    started = time.monotonic()
    response = await admin.request(method, path, headers=headers, data=body)
    await response.read()
    assert response.status == status
    assert time.monotonic() - started < 2
    await nothing_applied(redis, namespace)


def head(length: str) -> bytes:
    return (
        f"POST {PAUSE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n{length}\r\n\r\n"
    ).encode()


STALLS: Final = {
    "length_never_sent": head("Content-Length: 40") + b'{"for_s": 60',
    "chunked_never_ended": head("Transfer-Encoding: chunked") + b'c\r\n{"for_s": 60\r\n',
    "headers_only": head("Content-Length: 13"),
}


@pytest.mark.parametrize("request_bytes", STALLS.values(), ids=STALLS.keys())
async def test_a_stalled_body_is_408_within_the_timeout_and_not_applied(
    admin: AdminClient, redis: aioredis.Redis, namespace: str, request_bytes: bytes
) -> None:
    port = admin.server.port
    assert port is not None
    started = time.monotonic()
    answer = await exchange(port, request_bytes, timeout_s=5)
    assert status_of(answer) == 408, answer[:200]
    assert time.monotonic() - started < READ_TIMEOUT_MS / 1000 + 1
    await nothing_applied(redis, namespace)


async def test_many_stalled_bodies_at_once_block_no_one(
    admin: AdminClient, redis: aioredis.Redis
) -> None:
    port = admin.server.port
    assert port is not None
    stalled = [
        asyncio.create_task(exchange(port, STALLS["length_never_sent"], timeout_s=5))
        for _ in range(50)
    ]
    response = await admin.post(PAUSE, json={"for_s": 60, "by": "meanwhile"}, headers=AUTH)
    state: dict[str, Any] = await response.json()
    assert (response.status, state["pause"]["by"]) == (200, "meanwhile")
    assert {status_of(answer) for answer in await asyncio.gather(*stalled)} == {408}
