"""Texts from outside that lull stores and shows, at hostile sizes and with terminal escape
codes: a WhatsApp failed status whose error fields are megabytes (through the real
processor into the recent failures, the bot's history, `lull stats` and its --json), and a
dead-letter reason quoting a huge error."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from lull.cli import main
from lull.common.store.sent import SentMessage
from lull.dev.fake_graph import FakeGraph, ScriptedError
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.conftest import FIXTURES
from tests.ops.lull_dead import RunDead
from tests.ops.test_dead import messenger_body
from tests.sender.conftest import MakeSender, emit

PHONE_ID, PHONE = "106540352242922", "16315551234"
CONVERSATION = f"whatsapp:{PHONE_ID}:{PHONE}"
ESCAPES = "\x1b[2J\x1b]0;owned\x07[/][bold red]"


def failed_status(message_id: str, **error: Any) -> bytes:
    """Meta's failed status for message_id, with its first error's fields replaced."""
    doc: dict[str, Any] = orjson.loads(
        (FIXTURES / "whatsapp" / "statuses_failed_undeliverable.json").read_bytes()
    )
    status = doc["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["id"] = message_id
    first = status["errors"][0]
    details = error.pop("details", None)
    first.update(error)
    if details is not None:
        first["error_data"]["details"] = details
    return orjson.dumps(doc)


@pytest.fixture
def env(base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test namespace, also in os.environ for the in-process `lull stats`."""
    for name, value in base_env.items():
        monkeypatch.setenv(name, value)
    return base_env


async def test_a_2_mb_failed_status_is_stored_and_shown_bounded_and_escaped(
    redis: aioredis.Redis, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    processor = Processor(redis, ProcessorSettings.from_env(env))
    keys = processor.keys
    wamid = "wamid.ours"
    await redis.set(keys.sent_message(wamid), SentMessage(CONVERSATION, 7).encode())
    # The sender made the history when it sent wamid.ours (a failure only joins one).
    await redis.rpush(keys.history(CONVERSATION), orjson.dumps({"role": "bot", "mid": wamid}))
    await processor.start()
    two_mb = ESCAPES + "d" * 2_000_000
    body = failed_status(wamid, title=two_mb, message=two_mb, details=two_mb)
    unmatched = failed_status("wamid." + "x" * 1_000_000, title=ESCAPES, details=two_mb)
    for raw in (body, unmatched):
        await redis.xadd(keys.inbound(), {"body": raw, "received_at": int(time.time() * 1000)})
    started = time.monotonic()
    assert await processor.drain() == 0
    assert time.monotonic() - started < 10
    # What Redis holds: the recent failures and the bot's history, a few KB at most.
    stored = [*await redis.lrange(keys.delivery_failures(0), 0, -1)]
    stored += await redis.lrange(keys.history(CONVERSATION), 0, -1)
    assert len(stored) == 4
    assert all(len(item) < 4_000 for item in stored), [len(item) for item in stored]
    assert all(len(key) < 1_000 for key in await redis.keys(f"{keys.namespace}*"))
    last = await redis.lindex(keys.history(CONVERSATION), -1)
    assert last is not None
    history_item = orjson.loads(last)
    assert history_item["details"].startswith(ESCAPES + "ddd")  # stored as Meta sent it, cut
    assert history_item["details"].endswith(f"({len(two_mb) - 1000} more characters)")

    capsys.readouterr()
    assert await asyncio.to_thread(main, ["stats", "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out) < 20_000
    shown = json.loads(out.splitlines()[-1])["delivery_failures"]
    assert {len(f["message_id"]) for f in shown} <= {len(wamid), 256}
    # The screen: rich markup in a title is shown as text, control characters escaped.
    assert await asyncio.to_thread(main, ["stats"]) == 0
    screen = capsys.readouterr().out
    assert "\x1b]0;" not in screen and "\x07" not in screen
    assert "\\x1b[" in screen  # escaped (the narrow table cuts the rest of the title)


async def test_lull_dead_shows_a_reason_and_a_users_text_escaped(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, lull_dead: RunDead
) -> None:
    sender = await make_sender()
    graph.script([ScriptedError(400, 100, ESCAPES + "e" * 100_000)], latency_ms=0)
    await emit(redis, sender.keys, "u1", 1, "hi " + ESCAPES)
    await sender.drain()
    code, out, _ = await lull_dead("list")
    assert code == 0
    [letter_id] = [line.split()[0] for line in out.splitlines()[1:-1]]
    code, shown, _ = await lull_dead("show", letter_id)
    assert code == 0
    for screen in (out, shown):
        assert "\x1b" not in screen and "\x07" not in screen
    assert "\\x1b]0;owned\\x07" in shown  # the reason, escaped
    assert len(shown) < 10_000  # the reason was cut at 1000 characters when it was stored


async def test_lull_stats_shows_a_hostile_user_id_escaped_and_as_text(
    redis: aioredis.Redis, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A user id is whatever the webhook says; it is in the conversation key `lull stats`
    shows as the oldest open window."""
    settings = {**env, "LULL_WINDOW_MS": "3600000", "LULL_MAX_WAIT_MS": "3600000"}
    processor = Processor(redis, ProcessorSettings.from_env(settings))
    await processor.start()
    body = messenger_body(ESCAPES, "m1", "hi")
    await redis.xadd(
        processor.keys.inbound(), {"body": body, "received_at": int(time.time() * 1000)}
    )
    await processor.consumer.run_until_idle()  # applied; the window stays open
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["stats"]) == 0  # "[/]" is no markup error
    screen = capsys.readouterr().out
    assert "\x1b" not in screen and "\x07" not in screen
    assert "\\x1b[2J" in screen
