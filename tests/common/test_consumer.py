"""The consumer-group loop against a real Redis: ack, retry, dead letter, claim, stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from lull.common.consumer import Consumer, ConsumerConfig, Entry, Outcome, Permanent, RetryLater
from lull.common.redis_conn import connect
from lull.dev.embedded_redis import EmbeddedRedis, free_port

GROUP = "g"

Decide = Callable[[Entry, int], Outcome]
"""(entry, how many times this entry was handed to the handler before) -> outcome"""


class Recorder:
    """A handler that records every call and answers with decide."""

    def __init__(self, decide: Decide | None = None) -> None:
        self.calls: list[tuple[str, list[Entry]]] = []
        self.seen: dict[str, int] = {}
        self._decide = decide or (lambda _entry, _before: None)

    async def __call__(self, stream: str, entries: list[Entry], /) -> list[Outcome]:
        self.calls.append((stream, list(entries)))
        outcomes = [self._decide(entry, self.seen.get(entry.id, 0)) for entry in entries]
        for entry in entries:
            self.seen[entry.id] = self.seen.get(entry.id, 0) + 1
        return outcomes

    def handled(self) -> list[str]:
        """Ids in the order the handler saw them."""
        return [entry.id for _, entries in self.calls for entry in entries]


@pytest.fixture
def config(namespace: str) -> ConsumerConfig:
    """One stream, fast timers; tests replace() what they exercise."""
    return ConsumerConfig(
        streams=[f"{namespace}:in"],
        group=GROUP,
        dead_stream=f"{namespace}:dead",
        consumer="me",
        error_backoff_ms=5,
        error_backoff_max_ms=20,
    )


async def add(client: aioredis.Redis, stream: str, count: int) -> list[str]:
    """XADD count entries {n: i}; returns their ids."""
    ids: list[Any] = [await client.xadd(stream, {"n": str(i)}) for i in range(count)]
    return [entry_id.decode() for entry_id in ids]


async def read_all(client: aioredis.Redis, stream: str) -> list[tuple[str, dict[bytes, bytes]]]:
    """Every entry of stream: (id, fields)."""
    rows: Any = await client.xrange(stream)
    return [(entry_id.decode(), fields) for entry_id, fields in rows]


async def pending(client: aioredis.Redis, stream: str) -> dict[str, tuple[str, int]]:
    """id -> (consumer, times delivered) for every pending entry of GROUP."""
    rows: Any = await client.xpending_range(stream, GROUP, "-", "+", 1000)
    return {
        row["message_id"].decode(): (row["consumer"].decode(), row["times_delivered"])
        for row in rows
    }


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A metric's current value (0 when the series does not exist yet)."""
    return registry.get_sample_value(name, {"group": GROUP, **labels}) or 0.0


async def test_fresh_entries_are_acked_including_those_written_before_the_group(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    ids = await add(redis, stream, 3)  # before the group exists: created at id 0, not $
    handler = Recorder()
    registry = CollectorRegistry()
    consumer = Consumer(redis, config, handler, registry)

    await consumer.run_until_idle()

    assert handler.handled() == ids
    assert all(
        entry.times_delivered == 1 and entry.stream == stream for entry in handler.calls[0][1]
    )
    assert handler.calls[0][1][0].fields == {b"n": b"0"}
    assert await pending(redis, stream) == {}
    assert sample(registry, "lull_consumer_entries_total", outcome="acked") == 3
    assert await redis.xlen(config.dead_stream) == 0


@pytest.mark.not_a_batch  # {n: i} entries on a shard-tagged `out` stream
@pytest.mark.parametrize("same_slot", [False, True], ids=["two-commands", "multi-exec"])
async def test_permanent_is_dead_lettered_then_acked_and_the_group_flows_on(
    redis: aioredis.Redis, config: ConsumerConfig, namespace: str, same_slot: bool
) -> None:
    if same_slot:
        # Shard-tagged streams share a slot with a dead stream of the same tag: MULTI/EXEC.
        config = replace(
            config, streams=[f"{namespace}:{{0}}:out"], dead_stream=f"{namespace}:{{0}}:dead"
        )
    stream = config.streams[0]
    ids = await add(redis, stream, 3)
    poison = ids[1]
    handler = Recorder(lambda e, _: Permanent("cannot parse") if e.id == poison else None)
    registry = CollectorRegistry()
    consumer = Consumer(redis, config, handler, registry)

    await consumer.run_until_idle()

    [(_, fields)] = await read_all(redis, config.dead_stream)
    assert fields[b"n"] == b"1"
    assert fields[b"_source"] == stream.encode()
    assert fields[b"_id"] == poison.encode()
    assert fields[b"_group"] == GROUP.encode()
    assert fields[b"_consumer"] == b"me"
    assert fields[b"_reason"] == b"cannot parse"
    assert fields[b"_deliveries"] == b"1"
    assert abs(int(fields[b"_dead_at"]) - time.time() * 1000) < 60_000
    assert await pending(redis, stream) == {}
    assert sample(registry, "lull_consumer_dead_letters_total", reason_kind="permanent") == 1
    assert sample(registry, "lull_consumer_entries_total", outcome="acked") == 2

    later = await add(redis, stream, 1)
    await consumer.run_until_idle()
    assert handler.handled() == [*ids, *later]
    assert await pending(redis, stream) == {}


async def test_entry_claimed_past_max_deliveries_is_dead_lettered(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    poison, fine = await add(redis, stream, 2)
    # A crashed consumer read both; poison was claimed (and crashed on) twice more since.
    await redis.xreadgroup(GROUP, "ghost", {stream: ">"})
    for _ in range(2):
        await redis.xclaim(stream, GROUP, "ghost", 0, [poison])
    handler = Recorder()
    registry = CollectorRegistry()
    config = replace(config, max_deliveries=3, claim_idle_ms=0)
    consumer = Consumer(redis, config, handler, registry)

    await consumer.run_until_idle()

    assert handler.handled() == [fine]
    assert handler.calls[0][1][0].times_delivered == 2
    [(_, fields)] = await read_all(redis, config.dead_stream)
    assert fields[b"_id"] == poison.encode()
    assert fields[b"_reason"] == b"max_deliveries exceeded (4)"
    assert fields[b"_deliveries"] == b"4"
    assert await pending(redis, stream) == {}
    assert sample(registry, "lull_consumer_entries_total", outcome="claimed") == 2
    assert sample(registry, "lull_consumer_dead_letters_total", reason_kind="max_deliveries") == 1


async def test_retry_later_is_handled_again_after_its_delay_without_a_delivery(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    [entry_id] = await add(redis, stream, 1)
    delivered_when_retried: list[int] = []

    class RetryOnce(Recorder):
        async def __call__(self, stream: str, entries: list[Entry], /) -> list[Outcome]:
            if self.seen:
                delivered_when_retried.append((await pending(redis, stream))[entry_id][1])
            return await super().__call__(stream, entries)

    handler = RetryOnce(lambda _, before: RetryLater(60, "rate limited") if not before else None)
    registry = CollectorRegistry()
    consumer = Consumer(redis, config, handler, registry)

    started = time.monotonic()
    await consumer.run_until_idle()

    assert time.monotonic() - started >= 0.06
    assert handler.handled() == [entry_id, entry_id]
    assert [entries[0].times_delivered for _, entries in handler.calls] == [1, 1]
    assert delivered_when_retried == [1]  # the PEL counter did not move either
    assert await pending(redis, stream) == {}
    assert sample(registry, "lull_consumer_entries_total", outcome="retried") == 1
    assert sample(registry, "lull_consumer_entries_total", outcome="acked") == 1


async def test_long_retry_is_touched_so_no_other_replica_claims_it(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    [entry_id] = await add(redis, stream, 1)
    # Held for 1.5 s against a claim_idle of 600 ms: untouched, the rival would claim it.
    # (Touches come every 300 ms: a loaded machine's late wake-up stays well inside 600.)
    config = replace(config, claim_idle_ms=600, claim_interval_ms=10)
    rival_handler = Recorder()
    rival = Consumer(redis, replace(config, consumer="rival"), rival_handler, CollectorRegistry())
    handler = Recorder(lambda _, before: RetryLater(1500) if not before else None)
    consumer = Consumer(redis, config, handler, CollectorRegistry())

    rival_task = asyncio.create_task(rival.run_forever())
    try:
        await consumer.run_until_idle()
    finally:
        rival.request_stop()
        await asyncio.wait_for(rival_task, 2)

    assert handler.handled() == [entry_id, entry_id]
    assert rival_handler.handled() == []
    assert await pending(redis, stream) == {}


async def test_held_entry_claimed_by_another_meanwhile_is_left_to_it(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    [entry_id] = await add(redis, stream, 1)
    calls: list[str] = []

    async def slow_then_retry(stream: str, entries: list[Entry], /) -> list[Outcome]:
        calls.extend(e.id for e in entries)
        # 30 ms of handler work, then another replica (wrongly early) claims the entry: at
        # our due time its idle time is shorter than the time we have held it.
        await asyncio.sleep(0.03)
        await redis.xclaim(stream, GROUP, "rival", 0, [entry_id])
        return [RetryLater(50)]

    consumer = Consumer(redis, config, slow_then_retry, CollectorRegistry())
    await consumer.run_until_idle()

    assert calls == [entry_id]
    assert await pending(redis, stream) == {entry_id: ("rival", 2)}
    assert consumer.held == 0


async def test_handler_raising_is_retried_per_entry_and_nothing_is_lost(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    ids = await add(redis, stream, 3)
    calls: list[list[str]] = []

    async def flaky(stream: str, entries: list[Entry], /) -> list[Outcome]:
        calls.append([e.id for e in entries])
        if len(calls) == 1:
            raise RedisConnectionError("redis went away")
        if len(calls) == 2:
            return []  # breaks the contract: one outcome per entry
        return [None] * len(entries)

    registry = CollectorRegistry()
    consumer = Consumer(redis, config, flaky, registry)

    await consumer.run_until_idle()

    assert calls[0] == ids
    assert calls[1] == [ids[0]]  # after a failed batch, each entry goes alone
    assert sorted(i for batch in calls[2:] for i in batch) == ids
    assert await pending(redis, stream) == {}
    assert sample(registry, "lull_consumer_handler_errors_total") == 2
    assert sample(registry, "lull_consumer_entries_total", outcome="acked") == 3
    assert await redis.xlen(config.dead_stream) == 0


async def test_crashed_consumers_entries_are_claimed_by_another_after_claim_idle(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    ids = await add(redis, stream, 2)
    config = replace(config, claim_idle_ms=50, claim_interval_ms=10)

    # A reads, then "crashes": it stops with both entries held, never acked.
    crashing: list[Consumer] = []

    async def crash(_stream: str, entries: list[Entry], /) -> list[Outcome]:
        crashing[0].request_stop()
        return [RetryLater(60_000)] * len(entries)

    a = Consumer(redis, replace(config, consumer="a"), crash, CollectorRegistry())
    crashing.append(a)
    await asyncio.wait_for(a.run_forever(), 5)
    assert {i: owner for i, (owner, _) in (await pending(redis, stream)).items()} == dict.fromkeys(
        ids, "a"
    )

    # B claims them once they have been idle for claim_idle_ms (its own claim timer waits).
    b_seen: list[Entry] = []
    b_list: list[Consumer] = []

    async def recover(_stream: str, entries: list[Entry], /) -> list[Outcome]:
        b_seen.extend(entries)
        if len(b_seen) == len(ids):
            b_list[0].request_stop()
        return [None] * len(entries)

    b = Consumer(redis, replace(config, consumer="b"), recover, CollectorRegistry())
    b_list.append(b)
    await asyncio.wait_for(b.run_forever(), 5)

    assert sorted(e.id for e in b_seen) == ids
    assert {e.times_delivered for e in b_seen} == {2}
    assert await pending(redis, stream) == {}


async def test_entries_deleted_from_the_stream_are_acked_and_skipped(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    deleted, kept = await add(redis, stream, 2)
    await redis.xreadgroup(GROUP, "ghost", {stream: ">"})
    await redis.xdel(stream, deleted)
    handler = Recorder()
    registry = CollectorRegistry()
    consumer = Consumer(redis, replace(config, claim_idle_ms=0), handler, registry)

    await consumer.run_until_idle()

    assert handler.handled() == [kept]
    assert await pending(redis, stream) == {}
    assert sample(registry, "lull_consumer_entries_total", outcome="gone") == 1


async def test_held_entry_deleted_before_its_retry_is_not_handled_again(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    [entry_id] = await add(redis, stream, 1)
    handled: list[str] = []

    async def retry_then_delete(stream: str, entries: list[Entry], /) -> list[Outcome]:
        handled.extend(e.id for e in entries)
        await redis.xdel(stream, *(e.id for e in entries))
        return [RetryLater(10)] * len(entries)

    consumer = Consumer(redis, config, retry_then_delete, CollectorRegistry())
    await consumer.run_until_idle()

    assert handled == [entry_id]
    assert await pending(redis, stream) == {}
    assert consumer.held == 0


async def test_idle_empty_consumers_are_removed_but_not_one_with_pending_entries(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await redis.xgroup_createconsumer(stream, GROUP, "old-empty")
    await add(redis, stream, 1)
    await redis.xreadgroup(GROUP, "old-holding", {stream: ">"})
    # claim_idle_ms high: old-holding keeps its entry for this test.
    keep_all = replace(config, consumer_expire_ms=3_600_000, claim_idle_ms=60_000)
    await Consumer(redis, keep_all, Recorder(), CollectorRegistry()).claim_pass()
    names = {row["name"].decode() for row in await redis.xinfo_consumers(stream, GROUP)}
    assert {"old-empty", "old-holding"} <= names

    expire_now = replace(keep_all, consumer_expire_ms=0)
    consumer = Consumer(redis, expire_now, Recorder(), CollectorRegistry())
    await consumer.run_until_idle()

    names = {row["name"].decode() for row in await redis.xinfo_consumers(stream, GROUP)}
    assert "old-empty" not in names
    assert "old-holding" in names


async def test_claim_pass_sets_lag_and_pending_gauges_and_trims(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    ids = await add(redis, stream, 4)
    await redis.xreadgroup(GROUP, "ghost", {stream: ">"}, count=2)
    await redis.xack(stream, GROUP, ids[0])
    registry = CollectorRegistry()
    consumer = Consumer(redis, replace(config, claim_idle_ms=60_000), Recorder(), registry)

    await consumer.claim_pass()

    labels = {"stream": stream}
    assert sample(registry, "lull_stream_pending", **labels) == 1
    assert sample(registry, "lull_stream_lag", **labels) == 2
    assert [entry_id for entry_id, _ in await read_all(redis, stream)] == ids[1:]


async def test_request_stop_returns_promptly_and_leaves_held_entries_pending(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    [entry_id] = await add(redis, stream, 1)
    holding = asyncio.Event()

    async def hold(_stream: str, entries: list[Entry], /) -> list[Outcome]:
        holding.set()
        return [RetryLater(60_000)] * len(entries)

    consumer = Consumer(redis, config, hold, CollectorRegistry())
    task = asyncio.create_task(consumer.run_forever())
    await asyncio.wait_for(holding.wait(), 5)
    started = time.monotonic()
    consumer.request_stop()
    await asyncio.wait_for(task, 2)

    assert time.monotonic() - started < config.block_ms / 1000 + 0.2
    assert await pending(redis, stream) == {entry_id: ("me", 1)}
    assert consumer.held == 0


@pytest.mark.not_a_batch  # {n: i} entries on shard-tagged `out` streams
async def test_one_consumer_reads_two_streams(
    redis: aioredis.Redis, config: ConsumerConfig, namespace: str
) -> None:
    streams = [f"{namespace}:{{0}}:out", f"{namespace}:{{1}}:out"]
    config = replace(config, streams=streams)
    first = await add(redis, streams[0], 2)
    second = await add(redis, streams[1], 3)
    handler = Recorder()
    consumer = Consumer(redis, config, handler, CollectorRegistry())

    await consumer.run_until_idle()

    by_stream: dict[str, list[str]] = {}
    for stream, entries in handler.calls:
        assert {e.stream for e in entries} == {stream}
        by_stream.setdefault(stream, []).extend(e.id for e in entries)
    assert by_stream == {streams[0]: first, streams[1]: second}
    for stream in streams:
        assert await pending(redis, stream) == {}


def test_config_is_validated(namespace: str) -> None:
    base = ConsumerConfig(streams=[f"{namespace}:in"], group=GROUP, dead_stream="d")
    assert base.consumer.count("-") >= 2  # hostname-pid-hex
    with pytest.raises(ValueError, match=r"ConsumerConfig\.block_ms=0"):
        replace(base, block_ms=0)
    with pytest.raises(ValueError, match=r"ConsumerConfig\.streams"):
        replace(base, streams=[])
    with pytest.raises(ValueError, match=r"ConsumerConfig\.dead_stream"):
        replace(base, dead_stream=f"{namespace}:in")
    with pytest.raises(ValueError, match=r"error_backoff_max_ms"):
        replace(base, error_backoff_ms=100, error_backoff_max_ms=10)


async def test_client_timeout_must_outlast_a_blocked_read(
    redis_url: str, config: ConsumerConfig
) -> None:
    client = connect(redis_url, timeout_s=0.2)
    try:
        with pytest.raises(ValueError, match="socket_timeout"):
            Consumer(client, replace(config, block_ms=100), Recorder(), CollectorRegistry())
    finally:
        await client.aclose()


async def test_unreachable_redis_is_retried_with_backoff_not_raised(
    config: ConsumerConfig,
) -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1)
    registry = CollectorRegistry()
    consumer = Consumer(client, config, Recorder(), registry)
    # A timer of the test's own, not a wait for work: nothing can succeed here.
    asyncio.get_running_loop().call_later(0.2, consumer.request_stop)
    try:
        await asyncio.wait_for(consumer.run_forever(), 3)
    finally:
        await client.aclose()
    failures = sample(registry, "lull_consumer_redis_errors_total", op="create group")
    assert 1 <= failures < 20  # backed off (5, 10, 20, 20 ms ...), did not spin


async def test_stream_deleted_under_the_group_is_recreated(
    redis: aioredis.Redis, config: ConsumerConfig
) -> None:
    stream = config.streams[0]
    handler = Recorder()
    consumer = Consumer(redis, config, handler, CollectorRegistry())
    await consumer.run_until_idle()
    await redis.delete(stream)  # the group goes with it
    [entry_id] = await add(redis, stream, 1)

    await consumer.run_until_idle()

    assert handler.handled() == [entry_id]
    assert await pending(redis, stream) == {}


async def test_backoff_doubles_per_failing_step_not_per_failed_command(
    config: ConsumerConfig, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False).start()
    client = connect(server.url, timeout_s=1)
    # Three streams, each with an entry held for a retry: one step makes several commands.
    streams = [f"{config.streams[0]}:{n}" for n in range(3)]
    config = replace(config, streams=streams, error_backoff_ms=1, error_backoff_max_ms=1000)
    for stream in streams:
        await add(client, stream, 1)
    consumer = Consumer(client, config, Recorder(lambda *_: RetryLater(0)), CollectorRegistry())
    try:
        await consumer._step(until_idle=True)  # groups created, entries read and held
        assert consumer.held == 3
        server.stop()
        for _ in range(4):
            await consumer._step(until_idle=True)  # retries and read fail
        # One failure per step: the next pause is 2**3 ms, not 2**(4 steps x 4 commands).
        assert consumer._failures == 3
    finally:
        await client.aclose()
        server.stop()
