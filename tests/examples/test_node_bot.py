"""examples/node_bot (node:http and node:crypto only) answering through the local stack."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator

import aiohttp
import pytest

from lull.common.signing import sign
from tests.examples.conftest import EXAMPLES, SECRET, Stack

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH")
STARTUP_S = 10.0
TIMEOUT = aiohttp.ClientTimeout(total=5)


@pytest.fixture
async def node_bot() -> AsyncIterator[str]:
    """The bot on a free port; yields its URL, read from the line it prints at start."""
    assert NODE is not None
    env = {**os.environ, "LULL_HANDLER_SECRET": SECRET, "BOT_PORT": "0"}
    proc = await asyncio.create_subprocess_exec(
        NODE, str(EXAMPLES / "node_bot" / "bot.mjs"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), STARTUP_S)).decode()
        found = re.search(r"(http://\S+/lull)", line)
        assert found, f"unexpected first line: {line!r}"
        yield found.group(1)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), STARTUP_S)
    assert proc.returncode == 0


async def test_the_node_bot_echoes_a_burst_once(stack: Stack, node_bot: str) -> None:
    await stack.turn(node_bot, "u1", ["hi", "from node"])
    assert stack.replies_to("u1") == [{"text": "hi\nfrom node"}]
    assert await stack.dead_reasons() == []


async def test_the_node_bot_refuses_a_wrong_signature(node_bot: str) -> None:
    body = b'{"batch_id": "messenger:p:u:1", "text": "hi"}'
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for headers in ({"X-Lull-Signature-256": sign("not-the-secret", body)}, {}):
            async with session.post(node_bot, data=body, headers=headers) as response:
                assert response.status == 401
