"""Hard caps through the real processor: a large body for one user is cut into batches
within LULL_MAX_MESSAGES and LULL_MAX_BYTES, every message once, in order."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis

from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.windows import OPENED, WindowStore, encoded_fields, message_size
from lull.ops.dead import DeadLetters
from tests.hostile.batches import dead_letters
from tests.processor.test_processor import MakeProcessor, ingest, make_processor, messenger_body
from tests.processor.windowing import (
    batches,
    life_seqs,
    message,
    redis_now_ms,
    window_settings,
)

__all__ = ["make_processor"]


def size(message: dict[str, Any]) -> int:
    """The bytes LULL_MAX_BYTES counts of a batch's message (its JSON fields)."""
    return sum(
        len(orjson.dumps(message[field])) for field in ("mid", "kind", "text", "attachments", "raw")
    )


def check_in_order_once(found: list[dict[str, Any]], mids: list[str]) -> None:
    """Every mid in exactly one batch, the batches in seq order holding them in body order."""
    found = sorted(found, key=lambda b: b["seq"])
    assert [m["mid"] for b in found for m in b["messages"]] == mids


@pytest.mark.parametrize(
    ("caps", "reason"),
    [({"LULL_MAX_MESSAGES": "50"}, "max_messages"), ({"LULL_MAX_BYTES": "4096"}, "max_bytes")],
)
async def test_a_body_of_many_messages_for_one_user_is_batched_within_the_caps(
    make_processor: MakeProcessor, redis: aioredis.Redis, caps: dict[str, str], reason: str
) -> None:
    # Before 0.3 the messages applied before the closer ran piled into the full window:
    # batches of 200-1,400 messages with close_reason max_messages and a cap of 50.
    processor = make_processor(LULL_WINDOW_MS="60000", LULL_MAX_WAIT_MS="60000", **caps)
    mids = [f"m{n:04d}" for n in range(1000)]
    await ingest(redis, processor.keys, messenger_body("u1", mids, await redis_now_ms(redis)))
    await processor.start()
    await processor.consumer.run_until_idle()
    # The full windows were emitted while the body was applied, before any close pass.
    early = await batches(redis, processor.keys)
    assert len(early) > 5
    assert all(b["close_reason"] == reason for b in early)
    await processor.closer.close_due(everything=True)
    found = await batches(redis, processor.keys)
    max_messages, max_bytes = (
        int(caps.get("LULL_MAX_MESSAGES", 50)),
        int(caps.get("LULL_MAX_BYTES", 65536)),
    )
    assert all(len(b["messages"]) <= max_messages for b in found)
    assert all(sum(size(m) for m in b["messages"]) <= max_bytes for b in found)
    check_in_order_once(found, mids)
    seqs = sorted(await life_seqs(redis, processor.keys, found))
    assert seqs == list(range(1, len(found) + 1))


async def test_a_replayed_body_is_a_no_op_also_after_caps_closed_windows(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(LULL_WINDOW_MS="60000", LULL_MAX_WAIT_MS="60000")
    mids = [f"m{n:03d}" for n in range(120)]
    body = messenger_body("u1", mids, await redis_now_ms(redis))
    await processor.start()
    await ingest(redis, processor.keys, body)
    await processor.consumer.run_until_idle()
    first = await batches(redis, processor.keys)
    assert [len(b["messages"]) for b in first] == [50, 50]
    # Meta's retry, a claimed entry or `lull dead replay`: the same body once more.
    await ingest(redis, processor.keys, body)
    await processor.consumer.run_until_idle()
    assert await batches(redis, processor.keys) == first
    await processor.closer.close_due(everything=True)
    check_in_order_once(await batches(redis, processor.keys), mids)


async def test_events_applied_twice_close_nothing_twice(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    # A replica that applied a read and died before its XACK: the next one applies it again.
    processor = make_processor(LULL_WINDOW_MS="60000", LULL_MAX_WAIT_MS="60000")
    store = processor.store
    await store.load_scripts()
    now = await redis_now_ms(redis)
    events = [(message(f"m{n}", now + n), now) for n in range(75)]
    first = await store.apply_closing(events)
    assert [c.messages for c in first.closed] == [50]
    again = await store.apply_closing(events)
    assert again.closed == []
    assert {a.status for a in again.applied} == {0}
    assert len(await batches(redis, processor.keys)) == 1


async def test_a_message_larger_than_max_bytes_alone_is_dead_lettered_alone(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(
        LULL_WINDOW_MS="60000", LULL_MAX_WAIT_MS="60000", LULL_MAX_BYTES="1024"
    )
    now = await redis_now_ms(redis)
    big = messenger_body("u1", ["big"], now).replace(b"text of big", b"x" * 2000)
    await ingest(redis, processor.keys, messenger_body("u1", ["a"], now))
    await ingest(redis, processor.keys, big)
    await ingest(redis, processor.keys, messenger_body("u1", ["b"], now))
    await processor.start()
    await processor.consumer.run_until_idle()
    await processor.closer.close_due(everything=True)
    [batch] = await batches(redis, processor.keys)
    assert [m["mid"] for m in batch["messages"]] == ["a", "b"]
    [dead] = await dead_letters(redis, processor.keys)
    assert dead[b"body"] == big
    assert b"more than LULL_MAX_BYTES (1024)" in dead[b"_reason"]


async def test_an_edit_that_would_pass_max_bytes_goes_into_the_next_window(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(
        LULL_WINDOW_MS="60000", LULL_MAX_WAIT_MS="60000", LULL_MAX_BYTES="1024"
    )
    store = processor.store
    await store.load_scripts()
    now = await redis_now_ms(redis)
    original = message("m1", now, text="short")
    edit = message("m1-edit", now, kind="edit", text="y" * 900, target="m1")
    other = message("m2", now, text="z" * 400)
    window_bytes = message_size(encoded_fields(original)) + message_size(encoded_fields(other))
    assert window_bytes <= 1024 < window_bytes + 900
    await store.apply([(original, now), (other, now)])
    [applied] = await store.apply([(edit, now)])
    assert applied.status == OPENED
    await processor.closer.close_due(everything=True)
    full, rest = sorted(await batches(redis, processor.keys), key=lambda b: b["seq"])
    assert [m["text"] for m in full["messages"]] == ["short", "z" * 400]
    assert [m["text"] for m in rest["messages"]] == ["y" * 900]


@pytest.mark.parametrize("max_bytes", [256, 300, 1024])
def test_the_size_check_counts_what_the_scripts_count(max_bytes: int) -> None:
    # The processor refuses a message larger than the cap alone by the same count that the
    # apply script (window_layout.lua) keeps: the bytes of its JSON fields as they are stored.
    store = WindowStore(
        cast(RedisClient, None), Keys("sizes"), window_settings(max_bytes=max_bytes)
    )
    for n in range(60):
        event = message(f"m{n}é", 0, text="ü" * (n * 3))
        event = replace(event, raw={"n": [n] * n, "é": "x" * n}, attachments=[{"a": n}] * (n % 4))
        size = message_size(encoded_fields(event))
        why = store.unbatchable(event)
        assert why == (
            f"{size} bytes, more than LULL_MAX_BYTES ({max_bytes})" if size > max_bytes else None
        )


async def test_a_replay_after_the_cap_was_raised_batches_what_was_left_out_once(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    common = {"LULL_WINDOW_MS": "60000", "LULL_MAX_WAIT_MS": "60000"}
    before = make_processor(**common, LULL_MAX_BYTES="1024")
    body = messenger_body("u1", ["a", "big"], await redis_now_ms(redis))
    body = body.replace(b"text of big", b"x" * 2000)
    await ingest(redis, before.keys, body)
    await before.start()
    await before.consumer.run_until_idle()
    await before.closer.close_due(everything=True)
    assert [[m["mid"] for m in b["messages"]] for b in await batches(redis, before.keys)] == [["a"]]
    # The operator raises LULL_MAX_BYTES, then `lull dead replay --all`.
    after = make_processor(**common)
    assert len((await DeadLetters(redis, after.keys).replay_all()).done) == 1
    await after.start()
    await after.consumer.run_until_idle()
    await after.closer.close_due(everything=True)
    found = await batches(redis, after.keys)
    assert [[m["mid"] for m in b["messages"]] for b in found] == [["a"], ["big"]]
    assert await dead_letters(redis, after.keys) == []
