"""The closer wakes for a deadline it is told of, and for a stop, without waiting out its sleep.

Each test gives the closer a safety wake-up far longer than the test's own bound, so only a
real wake-up can make the awaited thing happen in time: no wall-clock assertion.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from lull.common.store.keys import Keys
from lull.common.store.windows import CloseResult, WindowStore
from lull.processor.closer import Closer
from lull.processor.metrics import ProcessorMetrics
from tests.processor.windowing import message, redis_now_ms, window_settings

SAFETY_SLEEP_MS = 600_000
BOUND_S = 10.0


def _closer(
    redis: aioredis.Redis, namespace: str, store_class: type[WindowStore] = WindowStore
) -> tuple[WindowStore, Closer, Keys]:
    settings = window_settings(window_ms=200, max_wait_ms=60_000)
    keys = Keys(namespace, 1)
    store = store_class(redis, keys, settings)
    metrics = ProcessorMetrics(CollectorRegistry())
    closer = Closer(store, 1, settings.grace_ms, metrics, max_sleep_ms=SAFETY_SLEEP_MS)
    return store, closer, keys


async def _first_batch(redis: aioredis.Redis, keys: Keys) -> bytes:
    """Block on the outbound stream for at most BOUND_S; the batch's JSON."""
    found = cast(
        list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
        await redis.xread({keys.outbound(0): "0-0"}, count=1, block=int(BOUND_S * 1000)),
    )
    assert found, "no batch emitted: the closer slept through its wake-up"
    entries = found[0][1]
    return entries[0][1][b"batch"]


@pytest.mark.parametrize("kind", ["postback", "text"])
async def test_a_window_due_sooner_wakes_the_sleeping_closer(
    redis: aioredis.Redis, namespace: str, kind: str
) -> None:
    store, closer, keys = _closer(redis, namespace)
    await store.load_scripts()
    stop = asyncio.Event()
    task = asyncio.create_task(closer.run(stop))
    try:
        await asyncio.wait_for(closer.asleep(), BOUND_S)  # no window: a safety-length sleep
        now = await redis_now_ms(redis)
        # A button tap is due at once, a text message after its 200 ms gap.
        [applied] = await store.apply([(message("m1", now, kind=kind), now)])
        closer.notify(applied.deadline_ms)
        assert b'"m1"' in await _first_batch(redis, keys)
    finally:
        stop.set()
        await asyncio.wait_for(task, BOUND_S)


class _RacingStore(WindowStore):
    """Applies one event right after its first close pass read the shard, as a concurrent
    apply on the same replica can, and tells the closer as the processor does."""

    closer: Closer

    async def close_due(self, shard: int, limit: int, *, everything: bool = False) -> CloseResult:
        result = await super().close_due(shard, limit, everything=everything)
        if not hasattr(self, "raced"):
            self.raced = True
            [applied] = await self.apply([(message("m1", result.now_ms, kind="postback"), 0)])
            self.closer.notify(applied.deadline_ms)
        return result


async def test_a_deadline_notified_during_a_close_pass_is_kept(
    redis: aioredis.Redis, namespace: str
) -> None:
    # The pass did not see the new window, and the closer was awake when told: the sleep
    # that follows must still end at that deadline, not at the safety wake-up.
    store, closer, keys = _closer(redis, namespace, _RacingStore)
    assert isinstance(store, _RacingStore)
    store.closer = closer
    await store.load_scripts()
    stop = asyncio.Event()
    task = asyncio.create_task(closer.run(stop))
    try:
        assert b'"m1"' in await _first_batch(redis, keys)
    finally:
        stop.set()
        await asyncio.wait_for(task, BOUND_S)


async def test_a_stop_ends_the_sleep(redis: aioredis.Redis, namespace: str) -> None:
    store, closer, _ = _closer(redis, namespace)
    await store.load_scripts()
    stop = asyncio.Event()
    task = asyncio.create_task(closer.run(stop))
    await asyncio.wait_for(closer.asleep(), BOUND_S)
    stop.set()
    await asyncio.wait_for(task, BOUND_S)
