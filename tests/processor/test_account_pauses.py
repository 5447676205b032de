"""Per-account pause times through the real processor: a human's echo on one account pauses
for that account's human_pause_ms (capped by its human_pause_max_ms), on another for its
own; a reload changes the pauses started after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from lull.processor.app import Processor
from tests.processor.test_processor import MakeProcessor, ingest, make_processor
from tests.processor.test_takeover import pause_of
from tests.processor.windowing import redis_now_ms

__all__ = ["make_processor"]  # the fixture, used by name

INBOX = "263902037430900"
ACCOUNTS = """\
["*"]
human_pause_max_ms = 3600000

["page-a"]
platform = "messenger"
human_pause_ms = 60000

["page-b"]
platform = "messenger"
human_pause_ms = 600000
human_pause_max_ms = 90000
"""


def inbox_echo(page: str, user: str, mid: str, t_ms: int) -> bytes:
    """A Page Inbox agent's message from page to user, as Meta echoes it."""
    message: dict[str, Any] = {"is_echo": True, "mid": mid, "text": "Ana here", "app_id": INBOX}
    item = {"sender": {"id": page}, "recipient": {"id": user}, "timestamp": t_ms,
            "message": message}  # fmt: skip
    return orjson.dumps({"object": "page", "entry": [{"id": page, "messaging": [item]}]})


async def _paused_for_ms(processor: Processor, redis: aioredis.Redis, conversation: str) -> int:
    pause = await pause_of(redis, processor.keys, conversation)
    assert pause["reason"] == "human_echo", pause
    return int(pause["until_ms"]) - int(pause["since_ms"])


async def test_each_accounts_human_echo_pauses_for_its_own_time(
    make_processor: MakeProcessor, redis: aioredis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS, encoding="utf-8")
    processor = make_processor(LULL_ACCOUNTS=str(path), LULL_HUMAN_PAUSE_MS="1000")
    now = await redis_now_ms(redis)
    for page in ("page-a", "page-b", "page-c"):
        await ingest(redis, processor.keys, inbox_echo(page, "u1", f"m_{page}", now))
    await processor.drain()
    assert await _paused_for_ms(processor, redis, "messenger:page-a:u1") == 60_000
    # Its own quiet time is longer than its own cap: the cap wins.
    assert await _paused_for_ms(processor, redis, "messenger:page-b:u1") == 90_000
    # An account the file does not name: the environment's time.
    assert await _paused_for_ms(processor, redis, "messenger:page-c:u1") == 1000


async def test_a_reload_changes_the_pauses_started_after_it(
    make_processor: MakeProcessor, redis: aioredis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS, encoding="utf-8")
    processor = make_processor(LULL_ACCOUNTS=str(path))
    live = processor.accounts
    assert live is not None
    now = await redis_now_ms(redis)
    await ingest(redis, processor.keys, inbox_echo("page-a", "u1", "m_1", now))
    await processor.drain()
    assert await _paused_for_ms(processor, redis, "messenger:page-a:u1") == 60_000

    path.write_text(ACCOUNTS.replace("human_pause_ms = 60000", "human_pause_ms = 45000"))
    assert live.reload("test")
    await ingest(redis, processor.keys, inbox_echo("page-a", "u2", "m_2", now))
    await processor.drain()
    # The pause started before the reload keeps its end; the new one follows the new file.
    assert await _paused_for_ms(processor, redis, "messenger:page-a:u1") == 60_000
    assert await _paused_for_ms(processor, redis, "messenger:page-a:u2") == 45_000
