"""Event timestamps hours in the future or the past: the window's times are clamped to the
Redis clock (DESIGN.md, "Windows"), so a skewed sender can neither hold a window open nor
close it early; nothing is lost and the order rules hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as aioredis

from lull.common.store.keys import Keys
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.hostile.batches import check_seqs, read_batches
from tests.hostile.bodies import ACCOUNTS, PLATFORM_OBJECTS, body_of, text_item
from tests.processor.windowing import redis_now_ms

HOUR_MS = 3_600_000
WINDOW_MS, MAX_WAIT_MS, SKEW_MS, LATENESS_MS = 150, 450, 100, 75
PLATFORMS = sorted(PLATFORM_OBJECTS)
# Closing runs on the Redis clock; this is how late a close may be on a busy 2-core machine
# (far below the hours a skewed timestamp would otherwise hold a window open).
CLOSE_SLACK_MS = 1500


@pytest.fixture
def processor(redis: aioredis.Redis, base_env: dict[str, str]) -> Processor:
    env = {**base_env, "LULL_WINDOW_MS": str(WINDOW_MS), "LULL_MAX_WAIT_MS": str(MAX_WAIT_MS),
           "LULL_MAX_SKEW_MS": str(SKEW_MS), "LULL_MAX_LATENESS_MS": str(LATENESS_MS),
           "LULL_PROCESSOR_METRICS_PORT": "0"}  # fmt: skip
    return Processor(redis, ProcessorSettings.from_env(env))


def conversation(platform: str, user: str) -> str:
    return f"{platform}:{ACCOUNTS[platform]}:{user}"


async def apply(
    processor: Processor, redis: aioredis.Redis, platform: str, user: str,
    messages: list[tuple[str, int]],
) -> tuple[int, int]:  # fmt: skip
    """Store one body with (mid, event time ms) messages and apply it; the Redis clock
    just before and just after."""
    items = [text_item(platform, user, mid, mid, t_ms) for mid, t_ms in messages]
    body = json.dumps(body_of(platform, *items)).encode()
    keys: Keys = processor.keys
    await redis.xadd(keys.inbound(), {b"body": body, b"received_at": await redis_now_ms(redis)})
    before = await redis_now_ms(redis)
    await processor.start()
    await processor.consumer.run_until_idle()
    return before, await redis_now_ms(redis)


async def deadline_of(processor: Processor, redis: aioredis.Redis, conv: str) -> int:
    keys = processor.keys
    score = await redis.zscore(keys.due(keys.shard_of(conv)), conv)
    assert score is not None, f"no open window for {conv}"
    return int(score)


def texts(batch: dict[str, Any]) -> list[str]:
    return [m["text"] for m in batch["messages"]]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("skew_h", [3, -30])
async def test_one_skewed_message_is_clamped_and_closes_on_time(
    processor: Processor, redis: aioredis.Redis, platform: str, skew_h: int
) -> None:
    now = await redis_now_ms(redis)
    event_ms = now + skew_h * HOUR_MS
    before, after = await apply(processor, redis, platform, "u1", [("m1", event_ms)])
    # t = clamp(event, now - lateness, now + skew), and the window ends WINDOW_MS after t.
    shift = SKEW_MS if skew_h > 0 else -LATENESS_MS
    deadline = await deadline_of(processor, redis, conversation(platform, "u1"))
    # Neither held open for hours nor due at once (WINDOW_MS - LATENESS_MS > 0 after apply).
    assert before + shift + WINDOW_MS <= deadline <= after + shift + WINDOW_MS
    assert await processor.drain(timeout_s=10) == 1
    [batch] = await read_batches(redis, processor.keys)
    assert texts(batch) == ["m1"]
    assert deadline <= batch["closed_at"] <= deadline + CLOSE_SLACK_MS
    assert batch["closed_at"] - batch["opened_at"] <= SKEW_MS + WINDOW_MS + CLOSE_SLACK_MS
    # The batch still reports the time the platform gave, unclamped (whole seconds: WhatsApp).
    expected_ms = event_ms // 1000 * 1000 if platform == "whatsapp" else event_ms
    assert batch["first_event_time"] == batch["last_event_time"] == expected_ms


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_mixed_skews_keep_every_message_in_clamped_order(
    processor: Processor, redis: aioredis.Redis, platform: str
) -> None:
    now = await redis_now_ms(redis)
    # Arrival order; hours off either way, so each clamps to one of the two bounds.
    sent = [("past-3h", -3), ("future-3h", 3), ("past-5h", -5), ("future-1h", 1),
            ("past-1h", -1), ("future-9h", 9)]  # fmt: skip
    messages = [(mid, now + hours * HOUR_MS) for mid, hours in sent]
    await apply(processor, redis, platform, "u1", messages)
    assert await processor.drain(timeout_s=10) == 1
    [batch] = await read_batches(redis, processor.keys)
    # By clamped time, then arrival: every past message (now - lateness) in arrival order,
    # then every future one (now + skew) in arrival order; the hours themselves do not count.
    assert texts(batch) == ["past-3h", "past-5h", "past-1h", "future-3h", "future-1h", "future-9h"]
    assert batch["closed_at"] - batch["opened_at"] <= SKEW_MS + WINDOW_MS + CLOSE_SLACK_MS


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_future_messages_cannot_hold_a_window_open(
    processor: Processor, redis: aioredis.Redis, platform: str
) -> None:
    conv = conversation(platform, "u1")
    now = await redis_now_ms(redis)
    _, applied = await apply(processor, redis, platform, "u1", [("first", now)])
    # The first message is on time: its t is at most the Redis clock when it was applied.
    first_deadline = await deadline_of(processor, redis, conv)
    assert first_deadline <= applied + WINDOW_MS
    # Each later message claims to come from further in the future.
    for n in range(1, 6):
        await apply(processor, redis, platform, "u1", [(f"later-{n}", now + n * 10 * HOUR_MS)])
        deadline = await deadline_of(processor, redis, conv)
        assert deadline >= first_deadline  # never moved back
        # max_wait bounds the window from its first message.
        assert deadline <= applied + MAX_WAIT_MS
    assert await processor.drain(timeout_s=10) == 1
    [batch] = await read_batches(redis, processor.keys)
    assert texts(batch) == ["first", *(f"later-{n}" for n in range(1, 6))]
    assert batch["closed_at"] - batch["opened_at"] <= MAX_WAIT_MS + CLOSE_SLACK_MS


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_late_messages_after_a_close_open_the_next_window(
    processor: Processor, redis: aioredis.Redis, platform: str
) -> None:
    now = await redis_now_ms(redis)
    await apply(processor, redis, platform, "u1", [("a", now - 2 * HOUR_MS)])
    assert await processor.drain(timeout_s=10) == 1
    # Hours older than the closed window's message: still delivered, in a window of its own.
    before, after = await apply(processor, redis, platform, "u1", [("b", now - 6 * HOUR_MS)])
    deadline = await deadline_of(processor, redis, conversation(platform, "u1"))
    assert before - LATENESS_MS + WINDOW_MS <= deadline <= after - LATENESS_MS + WINDOW_MS
    assert await processor.drain(timeout_s=10) == 1
    found = await read_batches(redis, processor.keys)
    check_seqs(found)
    assert [texts(b) for b in found] == [["a"], ["b"]]  # seqs one after the other, checked above
