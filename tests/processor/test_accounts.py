"""Per-account windows through the real processor: two accounts in one replica, each
batch closed on its own account's window; a reload changes new windows; strict mode."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import cast

import orjson
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from lull.common.accounts import load_accounts
from lull.common.accounts_reload import LiveAccounts
from lull.common.store.keys import Keys
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings, window_shape
from tests.poll import until
from tests.processor.windowing import batches, redis_now_ms

TWO_ACCOUNTS = """\
["*"]
max_wait_ms = 20000

["p-fast"]
platform = "messenger"
window_ms = 40

["p-slow"]
platform = "messenger"
window_mode = "fixed"
window_ms = 600
flush_on = "none"
"""


def _processor(
    redis: aioredis.Redis, base_env: dict[str, str], path: Path, **env: str
) -> Processor:
    environ = {
        **base_env,
        "LULL_ACCOUNTS": str(path),
        # An event time a little in the past still counts as it is (the deadline is exact).
        "LULL_MAX_LATENESS_MS": "60000",
        **env,
    }
    return Processor(redis, ProcessorSettings.from_env(environ))


async def _ingest(
    redis: aioredis.Redis, keys: Keys, account: str, mid: str, t_ms: int, *, postback: bool = False
) -> None:
    item: dict[str, object] = {"sender": {"id": "u1"}, "recipient": {"id": account},
                               "timestamp": t_ms}  # fmt: skip
    if postback:
        item["postback"] = {"mid": mid, "title": "Yes", "payload": "YES"}
    else:
        item["message"] = {"mid": mid, "text": f"text of {mid}"}
    body = orjson.dumps({"object": "page", "entry": [{"id": account, "messaging": [item]}]})
    fields = {"body": body, "received_at": int(time.time() * 1000), "sig": "ok"}
    await redis.xadd(keys.inbound(), fields)  # type: ignore[arg-type]


async def _deadline(redis: aioredis.Redis, keys: Keys, account: str) -> int:
    score = await redis.zscore(keys.due(0), f"messenger:{account}:u1")
    return int(cast(float, score))


async def test_two_accounts_in_one_replica_close_on_their_own_windows(
    redis: aioredis.Redis, base_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(TWO_ACCOUNTS, encoding="utf-8")
    processor = _processor(redis, base_env, path, LULL_WINDOW_MS="5000")
    keys = processor.keys
    now = await redis_now_ms(redis)
    await _ingest(redis, keys, "p-fast", "f1", now)
    await _ingest(redis, keys, "p-slow", "s1", now)
    await _ingest(redis, keys, "p-slow", "s2", now + 100)
    # A postback flushes with the environment's kinds; p-slow's file says none.
    await _ingest(redis, keys, "p-slow", "s3", now + 200, postback=True)
    await processor.start()
    await processor.consumer.run_until_idle()
    # Sliding 40 ms after its message; fixed 600 ms after its first, kept open by the postback.
    assert await _deadline(redis, keys, "p-fast") == now + 40
    assert await _deadline(redis, keys, "p-slow") == now + 600
    assert await processor.drain() == 2
    found = {b["account_id"]: b for b in await batches(redis, keys)}
    assert [m["mid"] for m in found["p-fast"]["messages"]] == ["f1"]
    assert [m["mid"] for m in found["p-slow"]["messages"]] == ["s1", "s2", "s3"]
    assert found["p-slow"]["close_reason"] == "gap"
    assert found["p-slow"]["closed_at"] >= now + 600


async def test_an_account_the_file_does_not_name_gets_the_defaults(
    redis: aioredis.Redis, base_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["*"]\nwindow_ms = 70\n["p-fast"]\nwindow_ms = 40\n', encoding="utf-8")
    processor = _processor(redis, base_env, path, LULL_WINDOW_MS="5000")
    now = await redis_now_ms(redis)
    await _ingest(redis, processor.keys, "p-other", "o1", now)
    await processor.start()
    await processor.consumer.run_until_idle()
    assert await _deadline(redis, processor.keys, "p-other") == now + 70


async def test_strict_dead_letters_an_account_the_file_does_not_name(
    redis: aioredis.Redis, base_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(TWO_ACCOUNTS, encoding="utf-8")
    processor = _processor(redis, base_env, path, LULL_ACCOUNTS_STRICT="1")
    now = await redis_now_ms(redis)
    await _ingest(redis, processor.keys, "p-other", "o1", now)
    await _ingest(redis, processor.keys, "p-fast", "f1", now)
    assert await processor.drain() == 1
    [batch] = await batches(redis, processor.keys)
    assert batch["account_id"] == "p-fast"
    dead = await redis.xrange(processor.keys.dead())
    [(_, fields)] = cast(list[tuple[bytes, dict[bytes, bytes]]], dead)
    reason = fields[b"_reason"].decode()
    assert "account p-other is not in" in reason
    assert "LULL_ACCOUNTS_STRICT=1" in reason


async def test_a_reload_changes_new_windows_and_a_bad_one_changes_nothing(
    redis: aioredis.Redis, base_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["p-fast"]\nwindow_ms = 40\n', encoding="utf-8")
    processor = _processor(redis, base_env, path)
    keys, live = processor.keys, processor.accounts
    assert live is not None
    now = await redis_now_ms(redis)
    await _ingest(redis, keys, "p-fast", "a1", now)
    await processor.start()
    await processor.consumer.run_until_idle()
    assert await _deadline(redis, keys, "p-fast") == now + 40

    # A bad file: one error line, and the settings in use stay.
    path.write_text('["p-fast"]\nwindow_ms = 0\n', encoding="utf-8")
    with capture_logs() as logs:
        assert not live.reload("test")
    [line] = [entry for entry in logs if entry["log_level"] == "error"]
    assert ":2: [\"p-fast\"] window_ms='0'" in line["reason"]
    assert live.current.of("p-fast").window.window_ms == 40
    assert await processor.drain() == 1

    # A good one: the next window is the new one's.
    path.write_text('["p-fast"]\nwindow_ms = 90\n', encoding="utf-8")
    assert live.reload("test")
    now = await redis_now_ms(redis)
    await _ingest(redis, keys, "p-fast", "a2", now)
    await processor.consumer.run_until_idle()
    assert await _deadline(redis, keys, "p-fast") == now + 90
    assert await processor.drain() == 1


async def test_a_reload_leaves_an_open_windows_deadline_to_its_own_settings(
    redis: aioredis.Redis, base_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["p-fast"]\nwindow_ms = 400\n', encoding="utf-8")
    processor = _processor(redis, base_env, path, LULL_MAX_WAIT_MS="60000")
    keys, live = processor.keys, processor.accounts
    assert live is not None
    now = await redis_now_ms(redis)
    await _ingest(redis, keys, "p-fast", "a1", now)
    await processor.start()
    await processor.consumer.run_until_idle()
    assert await _deadline(redis, keys, "p-fast") == now + 400

    # Reloaded while the window is open: the message that joins it keeps its 400 ms.
    path.write_text('["p-fast"]\nwindow_ms = 900\n', encoding="utf-8")
    assert live.reload("test")
    await _ingest(redis, keys, "p-fast", "a2", now + 100)
    await processor.consumer.run_until_idle()
    assert await _deadline(redis, keys, "p-fast") == now + 100 + 400
    assert await processor.drain() == 1

    # The window opened after the reload has the new gap.
    now = await redis_now_ms(redis)
    await _ingest(redis, keys, "p-fast", "a3", now)
    await processor.consumer.run_until_idle()
    assert await _deadline(redis, keys, "p-fast") == now + 900
    assert await processor.drain() == 1


def test_the_watch_sees_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["p1"]\nwindow_ms = 40\n', encoding="utf-8")
    live = LiveAccounts(load_accounts({"LULL_ACCOUNTS": str(path)}, window_shape))
    assert not live.changed()
    path.write_text('["p1"]\nwindow_ms = 50\n', encoding="utf-8")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert live.changed()
    assert live.reload("the file changed")
    assert not live.changed()
    assert live.current.of("p1").window_ms == 50


async def test_the_watch_reloads_a_changed_file_and_keeps_the_old_on_a_bad_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["p1"]\nwindow_ms = 40\n', encoding="utf-8")
    live = LiveAccounts(load_accounts({"LULL_ACCOUNTS": str(path)}, window_shape))
    stop = asyncio.Event()
    watch = asyncio.create_task(live.watch(stop, interval_s=0.02))
    try:
        first = live.current
        path.write_text('["p1"]\nwindow_ms = 0\n', encoding="utf-8")
        _touch(path, 1)
        with capture_logs() as logs:
            await until(lambda: not live.changed(), "the bad file read", 5)
            await until(lambda: bool(logs), "the error line", 5)
        assert live.current is first
        assert logs[0]["event"] == "accounts file not reloaded: the settings in use stay"
        path.write_text('["p1"]\nwindow_ms = 60\n', encoding="utf-8")
        _touch(path, 2)
        await until(lambda: live.current.of("p1").window_ms == 60, "the good file read", 5)
    finally:
        stop.set()
        await watch


def _touch(path: Path, seconds_later: int) -> None:
    """A later mtime than the file's, whatever the filesystem's resolution."""
    later = time.time_ns() + seconds_later * 1_000_000_000
    os.utime(path, ns=(later, later))
