"""Stream housekeeping against a real Redis: trimming keeps everything some group needs."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from lull.common.store.streams import (
    ensure_group,
    group_info,
    next_id,
    parse_id,
    remove_idle_consumers,
    trim_acknowledged,
)


async def add(client: aioredis.Redis, stream: str, count: int) -> list[str]:
    """XADD count entries; returns their ids."""
    ids: list[Any] = [await client.xadd(stream, {"n": str(i)}) for i in range(count)]
    return [entry_id.decode() for entry_id in ids]


async def ids_in(client: aioredis.Redis, stream: str) -> list[str]:
    """Ids still in stream."""
    rows: Any = await client.xrange(stream)
    return [entry_id.decode() for entry_id, _ in rows]


def test_next_id_is_the_smallest_greater_id() -> None:
    assert next_id("0-0") == "0-1"
    assert next_id("1700000000000-7") == "1700000000000-8"
    assert next_id(f"5-{2**64 - 1}") == "6-0"
    assert parse_id("12-3") < parse_id("12-10") < parse_id("13-0")


async def test_ensure_group_is_idempotent(redis: aioredis.Redis, namespace: str) -> None:
    stream = f"{namespace}:in"
    assert await ensure_group(redis, stream, "g") is True
    assert await ensure_group(redis, stream, "g") is False
    info = await group_info(redis, stream, "g")
    assert info is not None
    assert info.last_delivered_id == "0-0"


async def test_trim_without_groups_or_stream_trims_nothing(
    redis: aioredis.Redis, namespace: str
) -> None:
    stream = f"{namespace}:in"
    assert await trim_acknowledged(redis, stream) == 0  # no such key
    await add(redis, stream, 3)
    assert await trim_acknowledged(redis, stream) == 0
    assert await redis.xlen(stream) == 3


async def test_trim_keeps_pending_and_undelivered_entries_of_every_group(
    redis: aioredis.Redis, namespace: str
) -> None:
    stream = f"{namespace}:in"
    ids = await add(redis, stream, 6)
    await ensure_group(redis, stream, "fast")
    await ensure_group(redis, stream, "slow")

    # Nothing delivered to anyone yet: everything is still needed.
    assert await trim_acknowledged(redis, stream) == 0

    # fast: all delivered, 0..3 acked, 4 pending; slow: 0..2 delivered, 0 acked, 1 pending.
    await redis.xreadgroup("fast", "c", {stream: ">"})
    await redis.xack(stream, "fast", *ids[:4], ids[5])
    await redis.xreadgroup("slow", "c", {stream: ">"}, count=3)
    await redis.xack(stream, "slow", ids[0], ids[2])
    assert await trim_acknowledged(redis, stream) == 1  # only 0: slow still has 1 pending
    assert await ids_in(redis, stream) == ids[1:]

    await redis.xack(stream, "slow", ids[1])
    # slow has nothing pending but was never delivered 3..5: trim below 3 only.
    assert await trim_acknowledged(redis, stream) == 2
    assert await ids_in(redis, stream) == ids[3:]

    await redis.xreadgroup("slow", "c", {stream: ">"})
    await redis.xack(stream, "slow", *ids[3:])
    # fast still has 4 pending, out of order behind its acked 5.
    assert await trim_acknowledged(redis, stream) == 1
    assert await ids_in(redis, stream) == ids[4:]

    await redis.xack(stream, "fast", ids[4])
    assert await trim_acknowledged(redis, stream) == 2
    assert await redis.xlen(stream) == 0


async def test_remove_idle_consumers_spares_holders_and_keep(
    redis: aioredis.Redis, namespace: str
) -> None:
    stream = f"{namespace}:in"
    await ensure_group(redis, stream, "g")
    await add(redis, stream, 1)
    await redis.xgroup_createconsumer(stream, "g", "empty")
    await redis.xgroup_createconsumer(stream, "g", "me")
    await redis.xreadgroup("g", "holder", {stream: ">"})

    assert await remove_idle_consumers(redis, stream, "g", idle_ms=3_600_000, keep="me") == []
    assert await remove_idle_consumers(redis, stream, "g", idle_ms=0, keep="me") == ["empty"]
    rows: Any = await redis.xinfo_consumers(stream, "g")
    assert sorted(row["name"].decode() for row in rows) == ["holder", "me"]
    assert await remove_idle_consumers(redis, f"{namespace}:none", "g", idle_ms=0, keep="me") == []


async def test_trim_keeps_what_a_group_created_from_zero_needs(
    redis: aioredis.Redis, namespace: str
) -> None:
    stream = f"{namespace}:in"
    await ensure_group(redis, stream, "early")
    await add(redis, stream, 3)
    rows: Any = await redis.xreadgroup("early", "c", {stream: ">"})
    await redis.xack(stream, "early", *(entry_id for entry_id, _ in rows[0][1]))
    await ensure_group(redis, stream, "late")  # from id 0: it still needs all three

    assert await trim_acknowledged(redis, stream) == 0
    assert await redis.xlen(stream) == 3
