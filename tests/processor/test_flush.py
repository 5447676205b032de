"""`lull flush` as an operator runs it, against windows the real processor opened: the
batches it emits say they were flushed by hand (`close_reason: flush`, the contract)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from lull.cli import main
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.processor.test_processor import ingest, messenger_body
from tests.processor.windowing import batches, message, redis_now_ms

PAGE = "106000000000001"


async def _flush(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str) -> int:
    """`lull flush ARGV...` through the real command line, on its own event loop."""
    monkeypatch.delenv("LULL_REDIS_CLUSTER", raising=False)
    monkeypatch.delenv("LULL_SHARDS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return await asyncio.to_thread(main, ["flush", *argv])


async def test_a_flushed_window_reaches_the_bot_as_flush(
    redis: aioredis.Redis, base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A minute-long gap: only the operator's flush closes these windows during the test.
    env = {**base_env, "LULL_WINDOW_MS": "60000", "LULL_MAX_WAIT_MS": "60000"}
    processor = Processor(redis, ProcessorSettings.from_env(env))
    now = await redis_now_ms(redis)
    await ingest(redis, processor.keys, messenger_body("u1", ["a1", "a2"], now))
    await ingest(redis, processor.keys, messenger_body("u2", ["b1"], now))
    await processor.start()
    await processor.consumer.run_until_idle()

    assert await _flush(monkeypatch, env, "--conversation", f"messenger:{PAGE}:u1") == 0
    [first] = await batches(redis, processor.keys)
    assert (first["user_id"], first["close_reason"]) == ("u1", "flush")

    assert await _flush(monkeypatch, env, "--all") == 0
    [_, second] = await batches(redis, processor.keys)
    assert (second["user_id"], second["close_reason"]) == ("u2", "flush")


async def test_a_message_after_the_flush_joins_the_window_and_keeps_it_due(
    redis: aioredis.Redis, base_env: dict[str, str]
) -> None:
    env = {**base_env, "LULL_WINDOW_MS": "60000", "LULL_MAX_WAIT_MS": "60000"}
    processor = Processor(redis, ProcessorSettings.from_env(env))
    await processor.start()
    store, now = processor.store, await redis_now_ms(redis)
    await store.apply([(message("m1", now, user="u1"), now)])
    assert await store.flush("messenger:p1:u1")
    # Before the closer ran: the quiet gap must not push the flushed window back a minute.
    [added] = await store.apply([(message("m2", now + 5, user="u1"), now)])
    assert added.deadline_ms <= await redis_now_ms(redis)
    emitted, _, _ = await processor.closer.close_due()
    assert emitted == 1
    [batch] = await batches(redis, processor.keys)
    assert [m["mid"] for m in batch["messages"]] == ["m1", "m2"]
    assert batch["close_reason"] == "flush"
