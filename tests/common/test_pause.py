"""The pause script: who starts, lengthens and ends a pause, on the Redis clock."""

from __future__ import annotations

import redis.asyncio as aioredis

from lull.common.env import Env
from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseAction, PauseSettings, PauseStore

CONVERSATION = "messenger:p1:u1"
QUIET_MS = 60_000
CAP_MS = 600_000


def _store(redis: aioredis.Redis, namespace: str, quiet_ms: int = QUIET_MS) -> PauseStore:
    return PauseStore(redis, Keys(namespace), PauseSettings(quiet_ms=quiet_ms, cap_ms=CAP_MS))


async def test_a_human_turn_pauses_until_the_quiet_time_after_it(
    redis: aioredis.Redis, namespace: str
) -> None:
    store = _store(redis, namespace)
    pause = await store.apply(CONVERSATION, PauseAction.HUMAN, reason="human_echo", by="app9")
    assert pause.active
    assert pause.since_ms == pause.human_last_ms == pause.now_ms
    assert pause.until_ms == pause.now_ms + QUIET_MS
    assert (pause.reason, pause.by, pause.hold) == ("human_echo", "app9", False)
    # The key's own expiry is the pause's end: nothing else has to end it.
    expires_ms = await redis.pexpiretime(Keys(namespace).pause(CONVERSATION))
    assert expires_ms == pause.until_ms
    read = await store.read(CONVERSATION)
    assert read is not None and read.until_ms == pause.until_ms


async def test_each_human_turn_moves_the_end_but_never_past_the_cap(
    redis: aioredis.Redis, namespace: str
) -> None:
    store = PauseStore(redis, Keys(namespace), PauseSettings(quiet_ms=QUIET_MS, cap_ms=90_000))
    first = await store.apply(CONVERSATION, PauseAction.HUMAN)
    again = await store.apply(CONVERSATION, PauseAction.HUMAN)
    assert again.since_ms == first.since_ms
    assert again.until_ms == min(again.now_ms + QUIET_MS, first.since_ms + 90_000)
    # Pretend the pause began long ago: the cap, not the human's quiet time, ends it.
    key = Keys(namespace).pause(CONVERSATION)
    await redis.hset(key, "since_ms", again.now_ms - 80_000)
    capped = await store.apply(CONVERSATION, PauseAction.HUMAN)
    assert capped.until_ms == max(again.until_ms, capped.now_ms - 80_000 + 90_000)
    await redis.hset(key, mapping={"since_ms": capped.now_ms - 200_000, "until_ms": 0})
    over = await store.apply(CONVERSATION, PauseAction.HUMAN)
    assert not over.active
    assert await redis.exists(key) == 0


async def test_a_held_thread_stays_paused_until_released_or_capped(
    redis: aioredis.Redis, namespace: str
) -> None:
    store = _store(redis, namespace)
    held = await store.apply(CONVERSATION, PauseAction.HOLD, reason="thread_taken", by="inbox")
    assert held.hold and held.until_ms == held.since_ms + CAP_MS
    # A human's message in a held thread does not shorten the hold to the quiet time.
    turn = await store.apply(CONVERSATION, PauseAction.HUMAN)
    assert turn.hold and turn.until_ms == held.until_ms
    released = await store.apply(CONVERSATION, PauseAction.RELEASE)
    assert not released.active
    assert await store.read(CONVERSATION) is None


async def test_an_operator_pause_for_a_duration_is_not_shortened_by_a_turn(
    redis: aioredis.Redis, namespace: str
) -> None:
    store = _store(redis, namespace)
    two_hours_ms = 2 * 3600 * 1000
    paused = await store.apply(CONVERSATION, PauseAction.OPERATOR, by="ana", for_ms=two_hours_ms)
    assert paused.until_ms == paused.now_ms + two_hours_ms
    turn = await store.apply(CONVERSATION, PauseAction.HUMAN)
    assert turn.until_ms == paused.until_ms
    resumed = await store.apply(CONVERSATION, PauseAction.RESUME)
    assert not resumed.active
    assert await store.read(CONVERSATION) is None


async def test_a_pause_ends_by_itself_on_the_redis_clock(
    redis: aioredis.Redis, namespace: str
) -> None:
    store = _store(redis, namespace, quiet_ms=30)
    pause = await store.apply(CONVERSATION, PauseAction.HANDOFF)
    assert pause.active
    # Redis expires the key at until_ms; poll Redis's own clock, never a local sleep guess.
    key = Keys(namespace).pause(CONVERSATION)
    for _ in range(10_000):
        seconds, micros = await redis.time()
        if seconds * 1000 + micros // 1000 > pause.until_ms and not await redis.exists(key):
            break
    assert await redis.exists(key) == 0
    assert await store.read(CONVERSATION) is None


def test_settings_default_to_half_an_hour_and_a_day() -> None:
    settings = PauseSettings.from_env(Env({}))
    assert (settings.quiet_ms, settings.cap_ms) == (1_800_000, 86_400_000)
    custom = PauseSettings.from_env(
        Env({"LULL_HUMAN_PAUSE_MS": "1000", "LULL_HUMAN_PAUSE_MAX_MS": "5000"})
    )
    assert (custom.quiet_ms, custom.cap_ms) == (1000, 5000)
