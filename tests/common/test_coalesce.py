"""Concurrent callers share pipelines and each gets its own replies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

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


# The flush policy, driven by pipelines held in flight by a BLPOP: Redis answers them only
# when the test pushes, so what is in flight when is decided by the test, not by timing.
BLOCK_S = 4
"""BLPOP's own timeout: under the client's 5 s socket timeout, far above the test's time."""


async def _turns_until(check: Callable[[], bool]) -> None:
    # Loop turns, not time: the coalescer's tasks step once per turn.
    for _ in range(100):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("the coalescer did not get there in 100 loop turns")


async def _held(coalescer: Coalescer, key: str) -> asyncio.Task[list[Any]]:
    """A pipeline in flight until something is pushed onto key."""
    sent = coalescer.flushes
    held = asyncio.create_task(coalescer.execute([("BLPOP", key, BLOCK_S)]))
    await _turns_until(lambda: coalescer.flushes == sent + 1)
    return held


async def test_a_lone_caller_is_sent_at_once_while_a_pipeline_is_in_flight(
    redis: aioredis.Redis, namespace: str
) -> None:
    coalescer = Coalescer(redis, max_in_flight=2)
    held = await _held(coalescer, f"{namespace}:gate")
    # 0.2 sent it only once the BLPOP came back: the wait_for would fail after 5 s then.
    [entry_id] = await asyncio.wait_for(
        coalescer.execute([("XADD", f"{namespace}:in", "*", "body", "x")]), timeout=5
    )
    assert not held.done()
    assert await redis.xrange(f"{namespace}:in") == [(entry_id, {b"body": b"x"})]
    await redis.lpush(f"{namespace}:gate", "go")
    [popped] = await held
    assert tuple(popped) == (f"{namespace}:gate".encode(), b"go")
    await coalescer.close()


async def test_a_burst_leaves_in_one_pipeline(redis: aioredis.Redis, namespace: str) -> None:
    coalescer = Coalescer(redis)
    stream = f"{namespace}:in"
    ids = await asyncio.gather(
        *(coalescer.execute([("XADD", stream, "*", "n", n)]) for n in range(300))
    )
    await coalescer.close()
    assert (coalescer.flushes, coalescer.last_batch_size) == (1, 300)
    stored = [entry_id for entry_id, _ in await redis.xrange(stream) or []]
    assert stored == [entry_id for [entry_id] in ids]


async def test_callers_queued_while_every_pipeline_is_in_flight_leave_together(
    redis: aioredis.Redis, namespace: str
) -> None:
    coalescer = Coalescer(redis, max_in_flight=2)
    first = await _held(coalescer, f"{namespace}:gate1")
    second = await _held(coalescer, f"{namespace}:gate2")
    queued = [
        asyncio.create_task(coalescer.execute([("XADD", f"{namespace}:in", "*", "n", n)]))
        for n in range(50)
    ]
    await _turns_until(lambda: len(coalescer._pending) == 50)
    assert coalescer.flushes == 2  # nothing else may be in flight
    await redis.lpush(f"{namespace}:gate1", "go")
    await asyncio.gather(first, *queued)
    # All 50 in the pipeline that the first one's return let go, none alone.
    assert (coalescer.flushes, coalescer.last_batch_size) == (3, 50)
    assert await redis.xlen(f"{namespace}:in") == 50
    assert not second.done()
    await redis.lpush(f"{namespace}:gate2", "go")
    await second
    await coalescer.close()
