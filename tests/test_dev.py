"""`lull dev` as a newcomer runs it: a real process tree on loopback ports."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp
import orjson
import pytest

from common.dev import DEV_APP_SECRET
from common.embedded_redis import free_port
from ingest.signature import sign

TIMEOUT = aiohttp.ClientTimeout(total=2)


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=TIMEOUT) as response:
        return await response.json() if response.content_type == "application/json" else None


async def _until(check: Any, deadline_s: float) -> None:
    """Poll another process's HTTP state until check() is true (bounded)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.05)
    pytest.fail("condition not met in time")


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_lull_dev_answers_a_burst_once_and_stops_cleanly(base_env: dict[str, str]) -> None:
    ingest_port, graph_port = free_port(), free_port()
    env = {
        **os.environ, **base_env,
        "LULL_INGEST_PORT": str(ingest_port), "LULL_FAKE_GRAPH_PORT": str(graph_port),
        "LULL_PROCESSOR_METRICS_PORT": str(free_port()),
        "LULL_SENDER_METRICS_PORT": str(free_port()),
        "LULL_WINDOW_MS": "200",
    }  # fmt: skip
    for name in ("LULL_APP_SECRET", "LULL_VERIFY_TOKEN", "LULL_HANDLER"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "common.cli", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        async with aiohttp.ClientSession() as session:
            graph = f"http://127.0.0.1:{graph_port}/_sent"
            webhook = f"http://127.0.0.1:{ingest_port}/webhook"

            async def ready() -> bool:
                health = await session.get(f"http://127.0.0.1:{ingest_port}/healthz")
                return health.status == 200 and await _get(session, graph) == []

            await _until(ready, 20)
            now = int(time.time() * 1000)
            for n, text in enumerate(["hi", "I have", "a problem with my order"]):
                body = orjson.dumps({"object": "page", "entry": [{"id": "p1", "messaging": [{
                    "sender": {"id": "u1"}, "recipient": {"id": "p1"}, "timestamp": now + n,
                    "message": {"mid": f"dev-{n}", "text": text}}]}]})  # fmt: skip
                headers = {"X-Hub-Signature-256": sign(DEV_APP_SECRET, body)}
                async with session.post(webhook, data=body, headers=headers) as response:
                    assert response.status == 200

            async def answered() -> bool:
                return len(await _get(session, graph)) >= 1

            await _until(answered, 20)
            [reply] = await _get(session, graph)
            assert reply["payload"]["message"]["text"] == "hi\nI have\na problem with my order"
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output.decode(errors="replace")[-2000:]
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of the process group is left running
    assert b"webhook URL:" in output
