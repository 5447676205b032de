"""The admin API: off without a token, 401 without the right one, the same steps as the
CLI with it, and never on the public webhook port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from lull.common.conversation_control import ConversationControl
from lull.common.env import ConfigError, Env
from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseSettings
from lull.dev.embedded_redis import free_port, port_answers
from lull.ingest.admin_api import AdminMetrics, AdminSettings, create_admin_app
from lull.ingest.settings import IngestSettings
from tests.ingest.conftest import ClientFactory
from tests.poll import until

TOKEN = "0123456789abcdef0123456789abcdef"
CONVERSATION = "messenger:106000000000001:7001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAUSE = PauseSettings(quiet_ms=60_000, cap_ms=3_600_000)
WRONG_AUTH: list[dict[str, str]] = [
    {}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer ü"},
]  # fmt: skip


@pytest.fixture
async def admin(
    redis: aioredis.Redis, namespace: str
) -> AsyncIterator[tuple[TestClient, CollectorRegistry]]:  # type: ignore[type-arg]
    """The admin app with a token, on a loopback TestServer."""
    registry = CollectorRegistry()
    takeover = ConversationControl(redis, Keys(namespace), PAUSE)
    app = create_admin_app(AdminSettings(token=TOKEN), takeover, AdminMetrics(registry))
    async with TestClient(TestServer(app)) as client:
        yield client, registry


async def test_no_token_or_a_wrong_one_is_401(
    admin: tuple[TestClient, CollectorRegistry],  # type: ignore[type-arg]
) -> None:
    client, registry = admin
    for headers in WRONG_AUTH:
        response = await client.get(f"/conversations/{CONVERSATION}", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = await client.post(f"/conversations/{CONVERSATION}/pause")
    assert response.status == 401
    labels = {"action": "conversation", "status": "401"}
    assert registry.get_sample_value("lull_ingest_admin_requests_total", labels) == 5


async def test_pause_show_and_resume_with_the_token(
    admin: tuple[TestClient, CollectorRegistry],  # type: ignore[type-arg]
) -> None:
    client, registry = admin
    response = await client.get(f"/conversations/{CONVERSATION}", headers=AUTH)
    assert response.status == 200
    state: dict[str, Any] = await response.json()
    assert (state["conversation"], state["paused"], state["seq"]) == (CONVERSATION, False, 0)

    before_ms = int(time.time() * 1000)
    # URL-encoded ':' reaches the same conversation.
    encoded = CONVERSATION.replace(":", "%3A")
    response = await client.post(
        f"/conversations/{encoded}/pause", json={"for_s": 7200, "by": "Ann"}, headers=AUTH
    )
    assert response.status == 200
    state = await response.json()
    assert state["conversation"] == CONVERSATION
    assert state["paused"] is True
    pause = state["pause"]
    assert (pause["reason"], pause["by"]) == ("operator", "Ann")
    assert 7_190_000 < pause["until_ms"] - before_ms < 7_210_000

    response = await client.get(f"/conversations/{CONVERSATION}", headers=AUTH)
    assert (await response.json())["pause"]["by"] == "Ann"

    response = await client.post(f"/conversations/{CONVERSATION}/resume", headers=AUTH)
    assert response.status == 200
    assert (await response.json())["paused"] is False

    # Without for_s a pause lasts like a human turn (LULL_HUMAN_PAUSE_MS).
    response = await client.post(f"/conversations/{CONVERSATION}/pause", headers=AUTH)
    pause = (await response.json())["pause"]
    assert 0 < pause["until_ms"] - pause["since_ms"] <= PAUSE.quiet_ms
    assert pause["by"] == "admin-api"
    labels = {"action": "pause", "status": "200"}
    assert registry.get_sample_value("lull_ingest_admin_requests_total", labels) == 2


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/conversations/nonsense", None, 400),
        ("/conversations/telegram:1:2", None, 400),
        ("/conversations/messenger:1:2%0A", None, 400),
        ("/conversations/messenger:1:2%20OR%201", None, 400),
        ("/conversations/messenger:1*:2/pause", {}, 400),
        (f"/conversations/{CONVERSATION}/pause", {"for_s": 0}, 400),
        (f"/conversations/{CONVERSATION}/pause", {"for_s": "1h"}, 400),
        (f"/conversations/{CONVERSATION}/pause", {"for_s": 10**9}, 400),
        (f"/conversations/{CONVERSATION}/pause", {"until": 1}, 400),
        (f"/conversations/{CONVERSATION}/pause", [1], 400),
        (f"/conversations/{CONVERSATION}/resume", {"by": 3}, 400),
        (f"/conversations/{CONVERSATION}/stop", {}, 404),
    ],
)
async def test_bad_requests_say_why(
    admin: tuple[TestClient, CollectorRegistry],  # type: ignore[type-arg]
    path: str,
    body: object,
    status: int,
) -> None:
    client, _ = admin
    if body is None:
        response = await client.get(path, headers=AUTH)
    else:
        response = await client.post(path, json=body, headers=AUTH)
    assert response.status == status
    if status == 400:
        assert (await response.json())["error"]


async def test_the_public_port_does_not_serve_the_admin_paths(make_client: ClientFactory) -> None:
    client = await make_client(LULL_ADMIN_TOKEN=TOKEN, LULL_ADMIN_PORT=str(free_port()))
    for method in ("GET", "POST"):
        for suffix in ("", "/pause", "/resume"):
            response = await client.request(
                method, f"/conversations/{CONVERSATION}{suffix}", headers=AUTH
            )
            assert response.status in (404, 405)
    response = await client.get(f"/conversations/{CONVERSATION}", headers=AUTH)
    assert response.status == 404


def test_settings_refuse_a_short_token_and_the_public_port(ingest_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="LULL_ADMIN_TOKEN=<5 characters, masked>"):
        IngestSettings.from_env({**ingest_env, "LULL_ADMIN_TOKEN": "short"})
    with pytest.raises(ConfigError, match="LULL_ADMIN_PORT='8080': a port other than"):
        IngestSettings.from_env({**ingest_env, "LULL_ADMIN_TOKEN": TOKEN,
                                 "LULL_ADMIN_PORT": "8080"})  # fmt: skip
    assert not IngestSettings.from_env(ingest_env).admin.enabled
    settings = AdminSettings.from_env(Env({}), public_port=8080, read_timeout_ms=10_000)
    assert (settings.host, settings.port, settings.enabled) == ("127.0.0.1", 8081, False)


def _start_ingest(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lull.ingest"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def _wait_listening(proc: subprocess.Popen[bytes], port: int) -> None:
    def listening() -> bool:
        assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
        return port_answers("127.0.0.1", port)

    await until(listening, f"ingest listening on {port}", 20)


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.terminate()
    try:
        output, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    return output.decode()


@pytest.mark.parametrize("token", [TOKEN, None])
async def test_a_real_ingest_serves_the_admin_api_only_with_a_token(
    ingest_env: dict[str, str], token: str | None
) -> None:
    public, admin_port = free_port(), free_port()
    env = {**ingest_env, "LULL_INGEST_PORT": str(public), "LULL_INGEST_METRICS_PORT": "0",
           "LULL_ADMIN_PORT": str(admin_port)}  # fmt: skip
    if token is not None:
        env["LULL_ADMIN_TOKEN"] = token
    proc = _start_ingest(env)
    try:
        await _wait_listening(proc, public)
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            url = f"http://127.0.0.1:{public}/conversations/{CONVERSATION}"
            async with session.get(url, headers=AUTH) as response:
                assert response.status == 404
            if token is None:
                # Off: nothing listens on the admin port at all.
                assert not port_answers("127.0.0.1", admin_port)
                return
            await _wait_listening(proc, admin_port)
            url = f"http://127.0.0.1:{admin_port}/conversations/{CONVERSATION}"
            async with session.get(url) as response:
                assert response.status == 401
            async with session.post(f"{url}/pause", json={"for_s": 60}, headers=AUTH) as response:
                assert response.status == 200
                assert (await response.json())["paused"] is True
    finally:
        output = _stop(proc)
    assert proc.returncode == 0, output[-2000:]
