"""The processor on a split inbound stream: it reads every part, applies each conversation
from its own part, and neither loses nor repeats a message when ingest's copies of a body
were written only in part, or when a running deployment moves from one stream to parts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import redis.asyncio as aioredis

from lull.common.store.keys import PROCESSOR_GROUP, Keys
from lull.ops.stats import collect
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.inbound.bodies import Message, messenger_body, post_all, users_on_parts
from tests.processor.windowing import batches, redis_now_ms

WINDOW = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000"}


def processor(redis: aioredis.Redis, env: dict[str, str]) -> Processor:
    return Processor(redis, ProcessorSettings.from_env({**WINDOW, **env}))


def texts_per_user(found: list[dict[str, Any]]) -> dict[str, list[list[str]]]:
    """Each user's batches, in seq order, as the list of their message texts."""
    per_user: dict[str, list[tuple[int, list[str]]]] = defaultdict(list)
    for batch in found:
        per_user[batch["user_id"]].append((batch["seq"], [m["text"] for m in batch["messages"]]))
    return {user: [texts for _, texts in sorted(seqs)] for user, seqs in per_user.items()}


async def settled(redis: aioredis.Redis, keys: Keys) -> None:
    """Every inbound stream read and acknowledged; no dead letter."""
    for stream in keys.all_inbound():
        info = await redis.xinfo_groups(stream)
        group = next(g for g in info if g["name"] == PROCESSOR_GROUP.encode())
        assert (group["pending"], group["lag"]) == (0, 0), stream
    assert await redis.xlen(keys.dead()) == 0


async def test_a_burst_of_mixed_bodies_goes_through_every_part(
    redis: aioredis.Redis, base_env: dict[str, str], namespace: str
) -> None:
    env = {**base_env, "LULL_INBOUND_SHARDS": "3"}
    keys = Keys(namespace, inbound_parts=3)
    users = [user for part in users_on_parts(3, 3) for user in part]
    now = await redis_now_ms(redis)
    # Three rounds; in each, the users' n-th messages share bodies of three users each
    # (Meta batches entries), so most bodies are copied to two or three parts.
    bodies = [
        messenger_body([(u, f"{u}-m{n}", f"{u} says {n}", now + 10 * n) for u in users[i : i + 3]])
        for n in range(3)
        for i in range(0, len(users), 3)
    ]
    assert await post_all(env, bodies) == [200] * len(bodies)
    assert all([await redis.xlen(stream) for stream in keys.all_inbound()])
    assert await processor(redis, env).drain() == len(users)
    assert texts_per_user(await batches(redis, keys)) == {
        u: [[f"{u} says {n}" for n in range(3)]] for u in users
    }
    await settled(redis, keys)


@pytest.mark.parametrize("drain_between", [False, True], ids=["retried", "applied-then-retried"])
async def test_a_body_stored_in_part_then_delivered_again_is_applied_once(
    redis: aioredis.Redis, base_env: dict[str, str], namespace: str, drain_between: bool
) -> None:
    env = {**base_env, "LULL_INBOUND_SHARDS": "2"}
    keys = Keys(namespace, inbound_parts=2)
    [[a], [b]] = users_on_parts(2, 1)
    now = await redis_now_ms(redis)
    body = messenger_body([(a, "a1", "a one", now), (b, "b1", "b one", now + 1)])
    # Part 1's XADD fails (its key holds a string), part 0's is written: ingest stopped
    # between its copies, as far as Redis can tell. It answers 503, so Meta retries.
    await redis.set(keys.all_inbound()[1], "not a stream")
    assert await post_all(env, [body]) == [503]
    assert await redis.xlen(keys.all_inbound()[0]) == 1
    await redis.delete(keys.all_inbound()[1])
    applier = processor(redis, env)
    if drain_between:
        # a's window is applied and closed before the retry: its copy meets the seen ids.
        assert await applier.drain() == 1
    assert await post_all(env, [body]) == [200]  # Meta's retry of the whole body
    await applier.drain()
    assert texts_per_user(await batches(redis, keys)) == {a: [["a one"]], b: [["b one"]]}
    # a's copy was written twice (the first may be trimmed once acknowledged), applied once.
    assert (await redis.xinfo_stream(keys.all_inbound()[0]))["entries-added"] == 2
    await settled(redis, keys)


async def test_moving_a_running_deployment_from_one_stream_to_parts_loses_nothing(
    redis: aioredis.Redis, base_env: dict[str, str], namespace: str
) -> None:
    # Part by part (p0, p1, p2, p0, p1, p2): each body of two users is copied to two parts.
    users = [user for pair in zip(*users_on_parts(3, 2), strict=True) for user in pair]
    now = await redis_now_ms(redis)

    def round_of(n: int) -> list[bytes]:
        rows: list[Message] = [(u, f"{u}-m{n}", f"{u} says {n}", now + 10 * n) for u in users]
        return [messenger_body(rows[i : i + 2]) for i in range(0, len(rows), 2)]

    # Before: ingest writes the one stream. Step 1: processors learn the parts and keep
    # reading the one stream (LULL_INBOUND_DRAIN=1). Step 2: ingest switches.
    assert await post_all(base_env, round_of(0)) == [200] * 3
    moved = {**base_env, "LULL_INBOUND_SHARDS": "3", "LULL_INBOUND_DRAIN": "1"}
    assert await post_all(moved, round_of(1)) == [200] * 3
    keys = Keys(namespace, inbound_parts=3, inbound_drain=(1,))
    stats = await collect(redis, keys)
    assert (stats.inbound.length, stats.inbound.stream) == (3 + 6, f"{namespace}:in*")

    assert await processor(redis, moved).drain() == len(users)
    # One batch per user, in order: the events left in the one stream and those in the
    # parts met in the same window (the one stream is read first: Keys.all_inbound).
    assert texts_per_user(await batches(redis, keys)) == {
        u: [[f"{u} says 0", f"{u} says 1"]] for u in users
    }
    await settled(redis, keys)
    assert (await collect(redis, keys)).inbound.lag == 0


async def test_events_left_in_the_one_stream_after_their_window_closed_come_as_a_later_batch(
    redis: aioredis.Redis, base_env: dict[str, str], namespace: str
) -> None:
    # What the procedure avoids by step 1 (processors reading both before ingest switches):
    # the one stream read only after the new events' window closed. Nothing is lost, but
    # the older message comes in a batch after the newer one's.
    [[user]] = users_on_parts(1, 1)
    now = await redis_now_ms(redis)
    old = messenger_body([(user, "m0", "older", now)])
    new = messenger_body([(user, "m1", "newer", now + 10)])
    assert await post_all(base_env, [old]) == [200]
    parts = {**base_env, "LULL_INBOUND_SHARDS": "2"}
    assert await post_all(parts, [new]) == [200]
    assert await processor(redis, parts).drain() == 1  # the one stream is not read
    assert await processor(redis, {**parts, "LULL_INBOUND_DRAIN": "1"}).drain() == 1
    keys = Keys(namespace, inbound_parts=2, inbound_drain=(1,))
    assert texts_per_user(await batches(redis, keys)) == {user: [["newer"], ["older"]]}
    await settled(redis, keys)
