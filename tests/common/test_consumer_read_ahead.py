"""read_ahead: the next read is handed to the handler while the last one is still in hand;
each read's entries are acked only after their own handling, and a consumer that dies with
reads in hand leaves them pending, to be handled once by whoever claims them."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from lull.common.consumer import Consumer, ConsumerConfig, Entry, Outcome
from tests.common.test_consumer import add, config, pending

__all__ = ["config"]


async def test_the_next_read_is_handled_while_the_last_is_in_hand(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    ids = await add(redis, stream, 6)
    config = replace(config, read_count=3, read_ahead=True)
    calls: list[list[str]] = []
    second_arrived = asyncio.Event()
    pending_at_second: list[set[str]] = []

    async def handler(_stream: str, entries: list[Entry], /) -> list[Outcome]:
        calls.append([e.id for e in entries])
        if len(calls) == 1:
            # Without read-ahead the second read would wait for this one: a deadlock.
            await second_arrived.wait()
        elif len(calls) == 2:
            pending_at_second.append(set(await pending(redis, stream)))
            second_arrived.set()
        return [None] * len(entries)

    consumer = Consumer(redis, config, handler, CollectorRegistry())
    await asyncio.wait_for(consumer.run_until_idle(), 5)

    assert calls == [ids[:3], ids[3:]]
    # The first read was not acked while its handler ran, though the second was read.
    assert pending_at_second == [set(ids)]
    assert await pending(redis, stream) == {}


async def test_a_consumer_cancelled_with_reads_in_hand_loses_none_and_repeats_none(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    ids = await add(redis, stream, 6)
    config = replace(config, read_count=3, read_ahead=True)
    in_hand: list[list[str]] = []
    two_in_hand = asyncio.Event()

    async def stuck(_stream: str, entries: list[Entry], /) -> list[Outcome]:
        in_hand.append([e.id for e in entries])
        if len(in_hand) == 2:
            two_in_hand.set()
        await asyncio.Event().wait()  # never returns: the process dies first
        raise AssertionError("unreachable")

    a = Consumer(redis, replace(config, consumer="a"), stuck, CollectorRegistry())
    task = asyncio.create_task(a.run_forever())
    await asyncio.wait_for(two_in_hand.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert in_hand == [ids[:3], ids[3:]]
    owners = {i: owner for i, (owner, _) in (await pending(redis, stream)).items()}
    assert owners == dict.fromkeys(ids, "a")

    handled: list[str] = []

    async def recover(_stream: str, entries: list[Entry], /) -> list[Outcome]:
        handled.extend(e.id for e in entries)
        return [None] * len(entries)

    b = Consumer(redis, replace(config, consumer="b", claim_idle_ms=0), recover,
                 CollectorRegistry())  # fmt: skip
    await asyncio.wait_for(b.run_until_idle(), 5)
    assert sorted(handled) == ids
    assert await pending(redis, stream) == {}
    assert await redis.xlen(config.dead_stream) == 0
