"""`lull dev` as a newcomer runs it: a real process tree on loopback ports."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from lull.dev.embedded_redis import free_port
from tests.poll import until

TIMEOUT = aiohttp.ClientTimeout(total=2)


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=TIMEOUT) as response:
        return await response.json() if response.content_type == "application/json" else None


READY_S = 30.0


async def _collect(stream: asyncio.StreamReader, lines: list[str], seen: asyncio.Event) -> None:
    """Keep reading the stack's output (a full pipe would block it); flag the simulate line."""
    while line := await stream.readline():
        lines.append(line.decode(errors="replace"))
        if " simulate --url " in lines[-1]:
            seen.set()


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_lull_dev_answers_a_burst_once_and_stops_cleanly(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    ingest_port, graph_port = free_port(), free_port()
    env = {
        **os.environ, **base_env,
        "LULL_INGEST_PORT": str(ingest_port), "LULL_FAKE_GRAPH_PORT": str(graph_port),
        "LULL_PROCESSOR_METRICS_PORT": str(free_port()),
        "LULL_SENDER_METRICS_PORT": str(free_port()),
        "LULL_INGEST_METRICS_PORT": str(free_port()),
        # Above the printed command's largest jittered gap, so each user's burst is one turn.
        "LULL_WINDOW_MS": "2000",
    }  # fmt: skip
    for name in ("LULL_APP_SECRET", "LULL_VERIFY_TOKEN", "LULL_HANDLER"):
        env.pop(name, None)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lull.cli", "dev", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    printed = asyncio.Event()
    reader = asyncio.create_task(_collect(proc.stdout, lines, printed))
    try:
        await asyncio.wait_for(printed.wait(), READY_S)
        ready_s = time.monotonic() - started
        [line] = [text for text in lines if " simulate --url " in text]
        command = shlex.split(line.split("[lull dev]", 1)[1])
        # The command as printed, from another "terminal" that has no LULL_* set: the demo
        # page (a 2 s window, echo at once); then the same to the demo number (WhatsApp: its
        # bot thinks a second, so the user sees their messages read and the bot typing).
        # dev/accounts.toml gives each its window and bot. Only the gap is shorter: the printed
        # 800 ms (up to 1.2 s jittered) left a loaded CI machine 0.8 s before the 2 s window
        # closed, and one run split a burst there; 300 ms leaves 1.55 s.
        expected: dict[str, list[str]] = {}
        graph = f"http://127.0.0.1:{graph_port}/_sent"
        for platform in ("messenger", "whatsapp"):
            extra = ["--gap-ms", "300"]
            extra += [] if platform == "messenger" else ["--platform", platform]
            expected.update(await _simulate([*command, *extra], tmp_path / f"{platform}.jsonl"))
            async with aiohttp.ClientSession() as session:

                async def answered() -> bool:
                    return len(await _get(session, graph)) >= len(expected)

                await until(
                    answered,
                    "every user was answered",
                    20,
                    tolerate=(aiohttp.ClientError, TimeoutError),
                )
                sent = await _get(session, graph)
                presence = await _get(session, f"http://127.0.0.1:{graph_port}/_presence")
        typing = [p["payload"] for p in presence if "typing_indicator" in p["payload"]]
        # One per bot call of a WhatsApp user's batch, with the read: three on a quiet machine;
        # a loaded one may split a burst or retry a call (tests/sender/test_presence_retries.py
        # counts them exactly).
        assert 3 <= len(typing) <= 6, typing
        replies = {_recipient(item["payload"]): item for item in sent}
        assert len(sent) == len(replies) == len(expected)  # one reply per user, none twice
        for user, texts in expected.items():
            assert _text(replies[user]["payload"]) == "\n".join(texts)
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
        await reader
    output = "".join(lines)
    assert proc.returncode == 0, output[-2000:]
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of the process group is left running
    assert "webhook URL:" in output
    # What the banner promises: each reply in the terminal, shortened.
    replies_shown = [
        line for line in lines if line.startswith("[fake-graph]") and "reply sent" in line
    ]
    assert len(replies_shown) == len(expected)
    assert "Traceback" not in output
    assert " typing " in output
    assert "two accounts (dev/accounts.toml)" in output
    assert ready_s < READY_S


async def _simulate(command: list[str], record: Path) -> dict[str, list[str]]:
    """Run a simulate command with no LULL_* set; each user's texts in order."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LULL_")}
    simulate = await asyncio.create_subprocess_exec(
        *command, "--record", str(record), env=clean,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    simulate_output, _ = await asyncio.wait_for(simulate.communicate(), 30)
    assert simulate.returncode == 0, simulate_output.decode(errors="replace")
    posts = [orjson.loads(row) for row in record.read_bytes().splitlines()]
    expected: dict[str, list[str]] = {}
    for post in sorted(posts, key=lambda post: post["sent_at_ms"]):
        expected.setdefault(post["user_id"], []).extend(post["texts"])
    assert len(expected) == 3 and len(posts) == 9
    return expected


def _recipient(payload: dict[str, Any]) -> str:
    """The user a Send API payload goes to (Messenger: recipient.id; WhatsApp: to)."""
    return str(payload["to"] if "messaging_product" in payload else payload["recipient"]["id"])


def _text(payload: dict[str, Any]) -> str:
    if "messaging_product" in payload:
        return str(payload["text"]["body"])
    return str(payload["message"]["text"])
