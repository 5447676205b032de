"""Concurrent callers share pipelines and each gets its own replies."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from lull.common.coalesce import Coalescer


async def test_concurrent_callers_get_their_own_replies_in_order(
    redis: aioredis.Redis, namespace: str
) -> None:
    coalescer = Coalescer(redis)
    key = f"{namespace}:counter"

    async def caller(n: int) -> list[object]:
        return await coalescer.execute(
            [("INCR", key), ("SET", f"{key}:{n}", n), ("GET", f"{key}:{n}")]
        )

    results = await asyncio.gather(*(caller(n) for n in range(200)))
    await coalescer.close()
    assert sorted(int(r[0]) for r in results) == list(range(1, 201))  # type: ignore[call-overload]
    assert [r[2] for r in results] == [str(n).encode() for n in range(200)]


async def test_a_failed_command_is_its_callers_reply_only(
    redis: aioredis.Redis, namespace: str
) -> None:
    coalescer = Coalescer(redis)
    await redis.set(f"{namespace}:s", "text")
    bad, good = await asyncio.gather(
        coalescer.execute([("INCR", f"{namespace}:s")]),
        coalescer.execute([("GET", f"{namespace}:s")]),
    )
    await coalescer.close()
    assert isinstance(bad[0], aioredis.ResponseError)
    assert good == [b"text"]
