"""The admin API under a slow or hostile client: a body that trickles in (a slowloris) is
answered 408 within LULL_INGEST_READ_TIMEOUT_MS and never applied; a `by` full of terminal
escape codes is stored escaped."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from lull.common.conversation_control import ConversationControl
from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseSettings
from lull.ingest.admin_api import AdminMetrics, AdminSettings, create_admin_app
from tests.hostile.raw_http import status_of

TOKEN = "0123456789abcdef0123456789abcdef"
CONVERSATION = "messenger:106000000000001:7001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def trickle(port: int, head: bytes, body: bytes, every_s: float) -> tuple[bytes, float]:
    """Send head, then body one byte every every_s, until the server answers; the answer and
    how long it took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()

    async def drip() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            for byte in body:
                await writer.drain()
                await asyncio.sleep(every_s)  # the slowloris' pace, on purpose
                writer.write(bytes([byte]))

    dripping = asyncio.create_task(drip())
    try:
        async with asyncio.timeout(10):
            answer = await reader.read(4096)
        return answer, time.monotonic() - started
    finally:
        dripping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dripping
        writer.close()


async def test_a_trickling_body_is_408_within_the_bound_and_not_applied(
    redis: aioredis.Redis, namespace: str
) -> None:
    takeover = ConversationControl(redis, Keys(namespace), PauseSettings(60_000, 3_600_000))
    settings = AdminSettings(token=TOKEN, read_timeout_ms=300)
    app = create_admin_app(settings, takeover, AdminMetrics(CollectorRegistry()))
    async with TestClient(TestServer(app)) as client:
        port = client.server.port
        assert port is not None
        body = b'{"for_s": 3600, "by": "slow"}'
        head = (
            f"POST /conversations/{CONVERSATION}/pause HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        answer, took_s = await trickle(port, head, body, every_s=0.1)
        assert status_of(answer) == 408, answer
        assert took_s < 2
        # Not applied, then or later (the rest of the body arriving changes nothing).
        state = await (await client.get(f"/conversations/{CONVERSATION}", headers=AUTH)).json()
        assert state["paused"] is False
        assert await redis.keys(f"{namespace}*") == []
        # A body that arrives in time is applied as ever.
        response = await client.post(
            f"/conversations/{CONVERSATION}/pause", data=body, headers=AUTH
        )
        assert response.status == 200
        assert (await response.json())["pause"]["by"] == "slow"


async def test_a_by_with_escape_codes_is_stored_escaped(
    redis: aioredis.Redis, namespace: str
) -> None:
    takeover = ConversationControl(redis, Keys(namespace), PauseSettings(60_000, 3_600_000))
    app = create_admin_app(AdminSettings(token=TOKEN), takeover, AdminMetrics(CollectorRegistry()))
    async with TestClient(TestServer(app)) as client:
        response = await client.post(
            f"/conversations/{CONVERSATION}/pause",
            json={"by": "\x1b[2J\x1b]0;owned\x07Ann"},
            headers=AUTH,
        )
        assert response.status == 200
        assert (await response.json())["pause"]["by"] == "\\x1b[2J\\x1b]0;owned\\x07Ann"
