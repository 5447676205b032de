"""Seen message ids before 0.3 lived in the window key's string; 0.3 moves them to a sorted
set on first touch, in the same atomic step as the lookup, so they still dedupe."""

from __future__ import annotations

import hashlib
from typing import cast

import orjson
import pytest
import redis.asyncio as aioredis

from lull.common.store.keys import Keys
from lull.common.store.window_reads import WINDOW_HEADER
from lull.common.store.windows import ADDED, DUPLICATE, OPENED, WindowStore
from tests.processor.test_windows import Setup, setup
from tests.processor.windowing import batches, message, redis_now_ms

__all__ = ["setup"]

CONVERSATION = "messenger:p1:u1"
DEDUPE_TTL_S = 8 * 86_400


def member(mid: str) -> bytes:
    """A message id's member in a seen set (window_layout.lua's seen_member)."""
    return hashlib.sha1(orjson.dumps(mid)).hexdigest()[:24].encode()  # noqa: S324  (not security)


def old_seen(mids: list[str], at_s: int) -> bytes:
    """Seen entries as window_close.lua wrote them before 0.3."""
    return b"".join(b"\x1d%d\x1fM%s\x1f" % (at_s, orjson.dumps(mid)) for mid in mids)


def old_record(mid: str, t_ms: int, arrival: int) -> bytes:
    """One record of an open window, as window_apply.lua wrote it before 0.3."""
    return b"\x1e%d\x1f%d\x1fM%s\x1f\"text\"\x1f0\x1f0\x1f%s\x1f[]\x1f%s" % (
        t_ms, arrival, orjson.dumps(mid), orjson.dumps(mid), orjson.dumps({"mid": mid})
    )  # fmt: skip


async def write_old_key(
    redis: aioredis.Redis, keys: Keys, seen: bytes, records: bytes = b"", deadline_ms: int = 0
) -> None:
    """A window key as 0.2 left it: closed (deadline 0, with the dedupe TTL) or open."""
    count = records.count(b"\x1e")
    t_ms = deadline_ms - 60_000 if deadline_ms else 0
    header = WINDOW_HEADER.pack(t_ms, t_ms, t_ms, deadline_ms, count, len(records), count,
                                len(seen), 1)  # fmt: skip
    key = keys.conversation(CONVERSATION)
    await redis.set(key, header + seen + records, ex=None if deadline_ms else DEDUPE_TTL_S)
    if deadline_ms:
        await redis.zadd(keys.due(0), {CONVERSATION: deadline_ms})


async def test_ids_seen_before_the_upgrade_still_dedupe_and_move_to_the_set(
    setup: Setup, redis: aioredis.Redis
) -> None:
    store, closer, keys = setup(window_ms=60_000, max_wait_ms=60_000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    now_s = now // 1000
    expired = old_seen(["gone"], now_s - DEDUPE_TTL_S - 10)
    await write_old_key(redis, keys, expired + old_seen(["old1", "old2"], now_s - 3600))
    results = await store.apply(
        [(message("old2", now), now), (message("gone", now), now), (message("new", now), now)]
    )
    assert [r.status for r in results] == [DUPLICATE, OPENED, ADDED]
    # Moved in that same step: the old string holds no seen ids, the set holds them.
    header = await redis.getrange(keys.conversation(CONVERSATION), 0, WINDOW_HEADER.size - 1)
    assert isinstance(header, bytes)
    assert WINDOW_HEADER.unpack(header)[7] == 0
    seen = await redis.zrange(keys.seen(CONVERSATION), 0, -1)
    assert set(seen) == {member("old1"), member("old2")}
    await closer.close_due(everything=True)
    [batch] = await batches(redis, keys)
    assert [m["mid"] for m in batch["messages"]] == ["gone", "new"]
    # The closed window's ids joined them.
    seen = await redis.zrange(keys.seen(CONVERSATION), 0, -1)
    assert set(seen) == {member(m) for m in ("old1", "old2", "gone", "new")}
    [again] = await store.apply([(message("old1", now), now)])
    assert again.status == DUPLICATE


async def test_a_window_open_across_the_upgrade_keeps_its_messages_and_their_dedupe(
    setup: Setup, redis: aioredis.Redis
) -> None:
    store, closer, keys = setup(window_ms=60_000, max_wait_ms=60_000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    records = old_record("open1", now, 1) + old_record("open2", now, 2)
    await write_old_key(redis, keys, old_seen(["old"], now // 1000), records, now + 60_000)
    results = await store.apply(
        [(message("open1", now), now), (message("old", now), now), (message("new", now), now)]
    )
    assert [r.status for r in results] == [DUPLICATE, DUPLICATE, ADDED]
    await closer.close_due(everything=True)
    [batch] = await batches(redis, keys)
    assert [m["mid"] for m in batch["messages"]] == ["open1", "open2", "new"]
    # The window's ids joined the set when it closed: a late redelivery is a duplicate.
    again = await store.apply([(message("open2", now), now), (message("old", now), now)])
    assert [r.status for r in again] == [DUPLICATE, DUPLICATE]
    assert not await redis.exists(keys.conversation(CONVERSATION))


@pytest.mark.parametrize("old_ids", [2500])
async def test_a_long_history_moves_in_bounded_chunks_and_dedupes_meanwhile(
    setup: Setup, redis: aioredis.Redis, old_ids: int
) -> None:
    # 1,000 old ids move per call: a call stays short, and until the last of them moved a
    # lookup also reads the rest of the old string.
    store: WindowStore
    store, _closer, keys = setup(window_ms=60_000, max_wait_ms=60_000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    mids = [f"old{n}" for n in range(old_ids)]
    await write_old_key(redis, keys, old_seen(mids, now // 1000))
    [last] = await store.apply([(message(mids[-1], now), now)])
    assert last.status == DUPLICATE
    assert await redis.zcard(keys.seen(CONVERSATION)) == 1000
    for n in range(1, 3):
        [r] = await store.apply([(message(mids[-1 - n], now), now)])
        assert r.status == DUPLICATE
    assert await redis.zcard(keys.seen(CONVERSATION)) == old_ids
    assert not await redis.exists(keys.conversation(CONVERSATION))
    [new] = await store.apply([(message("new", now), now)])
    assert new.status == OPENED


async def test_the_seen_set_is_trimmed_past_the_dedupe_ttl_as_it_is_written(
    setup: Setup, redis: aioredis.Redis
) -> None:
    store, closer, keys = setup(window_ms=60_000, max_wait_ms=60_000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    seen = keys.seen(CONVERSATION)
    expired_s = now // 1000 - DEDUPE_TTL_S - 1
    expired = {member(f"expired{n}"): f"expired{n}" for n in range(20)}
    await redis.zadd(seen, dict.fromkeys(expired, expired_s))
    await redis.zadd(seen, {member("kept"): now // 1000 - 60})
    # A window of 10: its close adds 10 ids and trims 10 expired ones, a bounded piece.
    await store.apply([(message(f"m{n}", now), now) for n in range(10)])
    await closer.close_due(everything=True)
    assert await redis.zcount(seen, "-inf", f"({expired_s + 1}") == 10
    # One past the horizon and not trimmed yet is forgotten all the same.
    members = cast(list[bytes], await redis.zrange(seen, 0, 9))
    untrimmed = [expired[m] for m in members if m in expired]
    assert untrimmed
    [redelivered] = await store.apply([(message(untrimmed[0], now), now)])
    assert redelivered.status == OPENED
    assert await redis.zscore(seen, member("kept")) is not None
    assert 0 < await redis.ttl(seen) <= DEDUPE_TTL_S
