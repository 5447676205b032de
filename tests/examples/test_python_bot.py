"""examples/python_bot answering through the local stack: echo, an OpenAI-compatible
model (a fake one on loopback), and a refused signature."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from examples.python_bot.bot import SIGNATURE_HEADER, Config, create_app
from lull.common.signing import sign
from lull.dev.embedded_redis import free_port
from tests.examples.conftest import EXAMPLES, SECRET, Stack

TIMEOUT = aiohttp.ClientTimeout(total=5)
MODEL_KEY = "sk-test"


async def serve(app: web.Application) -> TestServer:
    server = TestServer(app)
    await server.start_server()
    return server


@pytest.fixture
async def echo_bot() -> AsyncIterator[TestServer]:
    server = await serve(create_app(Config(secret=SECRET)))
    yield server
    await server.close()


class FakeModel:
    """An OpenAI-compatible chat completions endpoint that records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.complete)
        return app

    async def complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.authorizations.append(request.headers.get("Authorization"))
        asked = body["messages"][-1]["content"]
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"model: {asked}"},
                        "finish_reason": "stop",
                    }
                ],
            }
        )


async def test_the_bot_echoes_a_burst_once(stack: Stack, echo_bot: TestServer) -> None:
    handler = str(echo_bot.make_url("/lull"))
    await stack.turn(handler, "u1", ["hi", "I have", "a problem with my order"])
    assert stack.replies_to("u1") == [{"text": "hi\nI have\na problem with my order"}]
    assert await stack.dead_reasons() == []


async def test_the_bot_asks_the_model_with_the_history(stack: Stack) -> None:
    model = FakeModel()
    model_server = await serve(model.app())
    config = Config(
        secret=SECRET,
        openai_base_url=str(model_server.make_url("/v1")),
        openai_api_key=MODEL_KEY,
        openai_model="test-model",
        openai_timeout_s=5,
    )
    bot = await serve(create_app(config))
    try:
        handler = str(bot.make_url("/lull"))
        await stack.turn(handler, "u1", ["hello", "there"])
        await stack.turn(handler, "u1", ["and again"])
    finally:
        await bot.close()
        await model_server.close()
    assert stack.replies_to("u1") == [{"text": "model: hello\nthere"}, {"text": "model: and again"}]
    assert model.authorizations == [f"Bearer {MODEL_KEY}"] * 2
    assert [request["model"] for request in model.requests] == ["test-model"] * 2
    # The second turn carries the first from lull's history: the user's messages, then
    # what the bot answered, then this turn's text.
    second = [(m["role"], m["content"]) for m in model.requests[1]["messages"][1:]]
    assert second == [
        ("user", "hello"),
        ("user", "there"),
        ("assistant", "model: hello\nthere"),
        ("user", "and again"),
    ]


async def test_a_model_that_fails_is_retried_then_dead_lettered(stack: Stack) -> None:
    failing = web.Application()

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=500)

    failing.router.add_post("/v1/chat/completions", down)
    model_server = await serve(failing)
    config = Config(secret=SECRET, openai_base_url=str(model_server.make_url("/v1")))
    bot = await serve(create_app(config))
    try:
        await stack.turn(str(bot.make_url("/lull")), "u1", ["hello"])
    finally:
        await bot.close()
        await model_server.close()
    # The bot answered 503 each time: lull retried (LULL_SEND_MAX_ATTEMPTS=2), then gave up.
    assert stack.replies_to("u1") == []
    [reason] = await stack.dead_reasons()
    assert "503" in reason


async def test_a_wrong_signature_is_refused(echo_bot: TestServer) -> None:
    body = b'{"batch_id": "messenger:p:u:1", "text": "hi"}'
    url = echo_bot.make_url("/lull")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for headers in ({SIGNATURE_HEADER: sign("not-the-secret", body)}, {}):
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 401
        async with session.post(
            url, data=body, headers={SIGNATURE_HEADER: sign(SECRET, body)}
        ) as response:
            assert response.status == 200
            assert await response.json() == {"replies": [{"text": "hi"}]}


async def test_a_sender_with_another_secret_gets_dead_letters(
    stack: Stack, echo_bot: TestServer
) -> None:
    handler = str(echo_bot.make_url("/lull"))
    await stack.turn(handler, "u1", ["hi"], LULL_HANDLER_SECRET="a-wrong-secret")
    assert stack.replies_to("u1") == []
    [reason] = await stack.dead_reasons()
    assert "401" in reason


def test_the_readme_quick_start_points_at_this_bot() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    quick_start = readme[readme.index("## Quick start") : readme.index("## Connect your bot")]
    config = Config(secret=SECRET)
    assert f"LULL_HANDLER=http://{config.host}:{config.port}/lull " in quick_start
    assert "examples/python_bot/bot.py" in quick_start
    assert [resource.canonical for resource in create_app(config).router.resources()] == ["/lull"]


async def test_the_bot_runs_as_the_readme_says(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LULL_HANDLER_SECRET": SECRET, "BOT_PORT": str(port)}
    script = str(EXAMPLES / "python_bot" / "bot.py")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, script, env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert line.strip() == f"bot: http://127.0.0.1:{port}/lull (echo)"
        body = b'{"batch_id": "messenger:p:u:1", "messages": [], "text": "hi"}'
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.post(
                f"http://127.0.0.1:{port}/lull",
                data=body,
                headers={SIGNATURE_HEADER: sign(SECRET, body)},
            ) as response,
        ):
            assert await response.json() == {"replies": [{"text": "hi"}]}
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0


def test_the_bot_will_not_start_without_a_secret() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LULL_HANDLER_SECRET"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "python_bot" / "bot.py")],
        env=env, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == [
        "LULL_HANDLER_SECRET is required: the secret lull signs with"
    ]
