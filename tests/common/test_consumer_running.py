"""The consumer loop with Running outcomes: a handler that goes on with an entry in the
background must not hold up the entries read after it, and the loop still decides for it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import redis.asyncio as aioredis
import structlog
from prometheus_client import CollectorRegistry

from lull.common.consumer import (
    Consumer,
    ConsumerConfig,
    Decided,
    Entry,
    Outcome,
    Permanent,
    RetryLater,
    Running,
)
from tests.common import test_consumer
from tests.common.test_consumer import Recorder, add, pending, read_all, sample

config = test_consumer.config
WAIT_S = 5.0


class Background:
    """A handler that answers Running for the entries named in `slow` (with a future the
    test resolves) and None for the others, recording what it was handed."""

    def __init__(self, slow: set[str]) -> None:
        self.slow = slow
        self.handled: list[str] = []
        self.futures: dict[str, asyncio.Future[Decided]] = {}
        self.running = asyncio.Event()
        self.quick = asyncio.Event()

    async def __call__(self, _stream: str, entries: list[Entry], /) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for entry in entries:
            self.handled.append(entry.id)
            if entry.id in self.slow and entry.id not in self.futures:
                future = asyncio.get_running_loop().create_future()
                self.futures[entry.id] = future
                outcomes.append(Running(future))
                self.running.set()
            else:
                outcomes.append(None)
                self.quick.set()
        return outcomes


async def test_a_running_entry_does_not_hold_up_entries_read_after_it(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    [slow] = await add(redis, stream, 1)
    handler = Background({slow})
    registry = CollectorRegistry()
    consumer = Consumer(redis, config, handler, registry)

    async def meanwhile() -> str:
        await handler.running.wait()
        [quick] = await add(redis, stream, 1)
        await handler.quick.wait()  # handled and acked while the slow one still runs
        assert await pending(redis, stream) == {slow: ("me", 1)}
        handler.futures[slow].set_result(None)
        return quick

    driver = asyncio.create_task(meanwhile())
    await asyncio.wait_for(consumer.run_until_idle(), WAIT_S)
    quick = await asyncio.wait_for(driver, WAIT_S)

    assert handler.handled == [slow, quick]
    assert await pending(redis, stream) == {}
    assert sample(registry, "lull_consumer_entries_total", outcome="running") == 1
    assert sample(registry, "lull_consumer_entries_total", outcome="acked") == 2
    assert consumer.held == 0


async def test_a_running_entry_is_kept_claimed_until_its_outcome_lands(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    [entry_id] = await add(redis, stream, 1)
    # Running for 2.5 s against a claim_idle of 1 s: untouched, the rival would claim it. (With
    # 200 ms, touched every 100 ms, a loaded CI machine's 100 ms stall let the rival in once.)
    config = replace(config, claim_idle_ms=1000, claim_interval_ms=10)
    rival_handler = Recorder()
    rival = Consumer(redis, replace(config, consumer="rival"), rival_handler, CollectorRegistry())
    handler = Background({entry_id})
    consumer = Consumer(redis, config, handler, CollectorRegistry())

    async def land_later() -> None:
        await handler.running.wait()
        # The rival starts once the entry is ours, so only its claim pass could take it.
        rival_task = asyncio.create_task(rival.run_forever())
        try:
            # The background work's own duration (what a slow bot takes), not a wait for work.
            await asyncio.sleep(2.5)
            handler.futures[entry_id].set_result(RetryLater(0, "not yet"))
        finally:
            rival.request_stop()
            await asyncio.wait_for(rival_task, 2)

    driver = asyncio.create_task(land_later())
    await asyncio.wait_for(consumer.run_until_idle(), WAIT_S)
    await asyncio.wait_for(driver, WAIT_S)

    # Landed as RetryLater: handed to the handler again, which then finished it.
    assert handler.handled == [entry_id, entry_id]
    assert rival_handler.handled() == []
    assert await pending(redis, stream) == {}


async def test_a_running_entry_its_own_work_acked_is_not_reported_taken_over(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    # The sender's finish step acks its entry atomically with the delivered mark, before
    # the delivery's outcome lands. A touch in between finds the entry no longer pending:
    # that is no takeover to report, and nothing is left held or pending.
    stream = config.streams[0]
    [entry_id] = await add(redis, stream, 1)
    config = replace(config, claim_idle_ms=200, claim_interval_ms=10)
    handler = Background({entry_id})
    registry = CollectorRegistry()
    consumer = Consumer(redis, config, handler, registry)

    async def finish_then_land() -> None:
        await handler.running.wait()
        await redis.xack(stream, config.group, entry_id)
        # The rest of the work after its finish step (logs, metrics): several touches long.
        await asyncio.sleep(0.5)
        handler.futures[entry_id].set_result(None)

    driver = asyncio.create_task(finish_then_land())
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(consumer.run_until_idle(), WAIT_S)
    await asyncio.wait_for(driver, WAIT_S)

    assert [e for e in logs if e["event"] == "held entry taken over or deleted"] == []
    assert await pending(redis, stream) == {}
    assert consumer.held == 0


async def test_a_running_entry_that_raises_or_is_permanent_is_decided_alone(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    failing, poison, fine = await add(redis, stream, 3)
    handler = Background({failing, poison, fine})
    registry = CollectorRegistry()
    consumer = Consumer(redis, config, handler, registry)

    async def land() -> None:
        while len(handler.futures) < 3:
            await handler.running.wait()
            handler.running.clear()
        handler.futures[failing].set_exception(ValueError("bot bug"))
        handler.futures[poison].set_result(Permanent("unusable"))
        handler.futures[fine].set_result(None)

    driver = asyncio.create_task(land())
    await asyncio.wait_for(consumer.run_until_idle(), WAIT_S)
    await asyncio.wait_for(driver, WAIT_S)

    # Only the entry whose work raised is handed out again (then it succeeds).
    assert sorted(handler.handled) == sorted([failing, poison, fine, failing])
    assert sample(registry, "lull_consumer_handler_errors_total") == 1
    [(_id, letter)] = await read_all(redis, config.dead_stream)
    assert letter[b"_reason"] == b"unusable"
    assert await pending(redis, stream) == {}


async def test_a_stop_leaves_running_entries_pending_for_a_claim(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    [entry_id] = await add(redis, stream, 1)
    handler = Background({entry_id})
    consumer = Consumer(redis, config, handler, CollectorRegistry())
    task = asyncio.create_task(consumer.run_forever())
    await asyncio.wait_for(handler.running.wait(), WAIT_S)
    started = time.monotonic()
    consumer.request_stop()
    await asyncio.wait_for(task, 2)

    assert time.monotonic() - started < config.block_ms / 1000 + 0.2
    assert await pending(redis, stream) == {entry_id: ("me", 1)}
    assert consumer.held == 0
    handler.futures[entry_id].set_result(None)  # lands after the stop: nothing to settle
    await asyncio.sleep(0)
    assert await pending(redis, stream) == {entry_id: ("me", 1)}
