"""A handler that raises on one entry every time: a poison entry is dead-lettered, Redis
outages are not the entry's fault and are retried."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from lull.common.consumer import Consumer, ConsumerConfig, Entry, Outcome, blames_the_entry
from tests.common.test_consumer import GROUP, add, config, pending, sample

__all__ = ["config"]  # the fixture, imported for pytest


async def test_entry_that_always_crashes_the_handler_is_dead_lettered(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    config = replace(config, max_deliveries=3)
    stream = config.streams[0]
    ids = await add(redis, stream, 3)
    poison = ids[1]
    calls: dict[str, int] = {}

    async def handler(_stream: str, entries: list[Entry], /) -> list[Outcome]:
        for entry in entries:
            calls[entry.id] = calls.get(entry.id, 0) + 1
        if any(entry.id == poison for entry in entries):
            raise KeyError("a field this input lacks")
        return [None] * len(entries)

    registry = CollectorRegistry()
    await Consumer(redis, config, handler, registry).run_until_idle()

    assert calls[poison] == 3  # the batch it came in, then alone until max_deliveries
    assert await pending(redis, stream) == {}
    rows: Any = await redis.xrange(config.dead_stream)
    [(_, letter)] = rows
    assert letter[b"_id"] == poison.encode()
    assert letter[b"_reason"].startswith(b"handler raised 3 times: KeyError")
    labels = {"group": GROUP, "reason_kind": "handler_error"}
    assert sample(registry, "lull_consumer_dead_letters_total", **labels) == 1
    assert sample(registry, "lull_consumer_entries_total", outcome="acked") == 2


async def test_redis_outage_in_the_handler_is_retried_not_dead_lettered(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    config = replace(config, max_deliveries=2)
    stream = config.streams[0]
    await add(redis, stream, 1)
    failures = 0

    async def handler(_stream: str, entries: list[Entry], /) -> list[Outcome]:
        nonlocal failures
        if failures < 5:  # more failures than max_deliveries
            failures += 1
            raise RedisConnectionError("redis went away")
        return [None] * len(entries)

    await Consumer(redis, config, handler, CollectorRegistry()).run_until_idle()

    assert failures == 5
    assert await pending(redis, stream) == {}
    assert await redis.xlen(config.dead_stream) == 0


def test_which_failures_blame_the_entry() -> None:
    failures: list[tuple[Any, bool]] = [
        (KeyError("x"), True),
        (ValueError("x"), True),
        (ResponseError("ERR user_script:12: attempt to index a nil value"), True),
        (ResponseError("OOM command not allowed when used memory > 'maxmemory'"), False),
        (ResponseError("READONLY You can't write against a read only replica."), False),
        (RedisConnectionError("gone"), False),
        (TimeoutError(), False),
        (OSError("reset"), False),
    ]
    for exc, blamed in failures:
        assert blames_the_entry(exc) is blamed, exc
