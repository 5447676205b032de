"""Window semantics through the real Lua scripts on a real Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from lull.common.env import Env
from lull.common.store.keys import Keys
from lull.common.store.windows import (
    ADDED,
    DUPLICATE,
    EDITED,
    LATE_UNSEND,
    OPENED,
    REMOVED,
    WindowStore,
)
from lull.processor.closer import Closer
from lull.processor.metrics import ProcessorMetrics
from lull.processor.settings import WindowSettings, window_from_env
from tests.processor.windowing import batches, life_seqs, message, redis_now_ms, window_settings

Setup = Callable[..., tuple[WindowStore, Closer, Keys]]


@pytest.fixture
def setup(redis: aioredis.Redis, namespace: str) -> Setup:
    def make(shards: int = 1, **overrides: Any) -> tuple[WindowStore, Closer, Keys]:
        settings: WindowSettings = window_settings(**overrides)
        keys = Keys(namespace, shards)
        store = WindowStore(redis, keys, settings)
        metrics = ProcessorMetrics(CollectorRegistry())
        return store, Closer(store, shards, settings.grace_ms, metrics), keys

    return make


async def test_sliding_deadline_follows_the_last_message(
    setup: Setup, redis: aioredis.Redis
) -> None:
    store, _, _ = setup(window_ms=1000, max_wait_ms=30_000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    [a] = await store.apply([(message("m1", now), now)])
    assert (a.status, a.deadline_ms) == (OPENED, now + 1000)
    [b] = await store.apply([(message("m2", now + 300), now)])
    assert (b.status, b.deadline_ms) == (ADDED, now + 1300)
    # Out of order: an earlier message never moves the deadline back.
    [c] = await store.apply([(message("m0", now - 200), now)])
    assert (c.status, c.deadline_ms) == (ADDED, now + 1300)


async def test_fixed_deadline_is_first_plus_window(setup: Setup, redis: aioredis.Redis) -> None:
    store, _, _ = setup(mode="fixed", window_ms=1000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    results = await store.apply([(message(f"m{i}", now + i * 100), now) for i in range(5)])
    assert {r.deadline_ms for r in results} == {now + 1000}


async def test_max_wait_caps_a_user_who_never_pauses(setup: Setup, redis: aioredis.Redis) -> None:
    # A user typing every 1.4 s with a 2 s gap would hold a "reset the timer" window forever.
    store, _, _ = setup(window_ms=2000, max_wait_ms=5000, max_skew_ms=60_000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    deadlines = [
        r.deadline_ms
        for r in await store.apply([(message(f"m{i}", now + i * 1400), now) for i in range(10)])
    ]
    assert deadlines[:3] == [now + 2000, now + 3400, now + 4800]
    assert set(deadlines[3:]) == {now + 5000}


async def test_clamp_to_redis_clock(setup: Setup, redis: aioredis.Redis) -> None:
    store, _, _ = setup(window_ms=1000, max_lateness_ms=500, max_skew_ms=2000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    hour = 3_600_000
    [future] = await store.apply([(message("f", now + 5 * hour, user="a"), now)])
    [past] = await store.apply([(message("p", now - 5 * hour, user="b"), now)])
    # Clamped to now + max_skew and now - max_lateness (now moves a little between calls).
    assert now + 2000 + 1000 <= future.deadline_ms <= now + 3000 + 50
    assert now - 500 + 1000 <= past.deadline_ms <= now + 500 + 50


async def test_duplicate_mid_is_a_no_op_open_and_after_close(
    setup: Setup, redis: aioredis.Redis
) -> None:
    store, closer, keys = setup(window_ms=20)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    first = await store.apply([(message("m1", now), now), (message("m1", now), now)])
    assert [r.status for r in first] == [OPENED, DUPLICATE]
    assert await closer.drain() == 1
    [again] = await store.apply([(message("m1", now), now)])
    assert again.status == DUPLICATE
    assert await closer.drain() == 0
    [batch] = await batches(redis, keys)
    assert [m["mid"] for m in batch["messages"]] == ["m1"]


async def test_a_closed_window_remembers_its_mids_past_whatsapps_redelivery_horizon(
    redis: aioredis.Redis, namespace: str
) -> None:
    # WhatsApp retries an unacknowledged webhook for up to 7 days: with the default settings
    # the closed window's mids must outlive that, or a late redelivery is answered again.
    settings = window_from_env(Env({}))
    keys = Keys(namespace, 1)
    store = WindowStore(redis, keys, settings)
    closer = Closer(store, 1, settings.grace_ms, ProcessorMetrics(CollectorRegistry()))
    await store.load_scripts()
    now = await redis_now_ms(redis)
    await store.apply([(message("m1", now, kind="postback"), now)])
    assert await closer.drain() == 1
    remembered_s = await redis.ttl(keys.seen("messenger:p1:u1"))
    assert remembered_s > 7 * 86_400
    [again] = await store.apply([(message("m1", now), now)])
    assert again.status == DUPLICATE


async def test_batch_fields_order_and_text(setup: Setup, redis: aioredis.Redis) -> None:
    store, closer, keys = setup(window_ms=30)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    await store.apply(
        [
            (message("b", now + 10, text="I have"), now + 1),
            (message("a", now, text="hi"), now + 2),
            (message("c", now + 10, text='a problem with my order ☕ "quoted"'), now + 3),
            (message("r", now + 11, text="", kind="reaction"), now + 4),
        ]
    )
    assert await closer.drain() == 1
    [batch] = await batches(redis, keys)
    assert [m["mid"] for m in batch["messages"]] == ["a", "b", "c", "r"]
    assert batch["text"] == 'hi\nI have\na problem with my order ☕ "quoted"'
    assert await life_seqs(redis, keys, [batch]) == [1]
    assert batch["batch_id"] == f"messenger:p1:u1:{batch['seq']}"
    assert (batch["platform"], batch["account_id"], batch["user_id"]) == ("messenger", "p1", "u1")
    assert batch["conversation"] == "messenger:p1:u1"
    assert batch["close_reason"] == "gap"
    assert batch["first_event_time"] == now
    assert batch["last_event_time"] == now + 11
    assert batch["opened_at"] <= batch["closed_at"]
    first = batch["messages"][0]
    assert first == {
        "mid": "a", "event_time": now, "received_at": now + 2, "kind": "text", "text": "hi",
        "attachments": [], "raw": {"mid": "a"},
    }  # fmt: skip


async def test_message_after_close_opens_a_new_window_with_next_seq(
    setup: Setup, redis: aioredis.Redis
) -> None:
    store, closer, keys = setup(window_ms=20)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    await store.apply([(message("m1", now), now)])
    await closer.drain()
    now = await redis_now_ms(redis)
    [r] = await store.apply([(message("m2", now), now)])
    assert r.status == OPENED
    await closer.drain()
    found = await batches(redis, keys)
    assert [b["text"] for b in found] == ["m1", "m2"]
    assert await life_seqs(redis, keys, found) == [1, 2]


async def test_a_flush_kind_makes_a_window_due_at_once(setup: Setup, redis: aioredis.Redis) -> None:
    store, closer, keys = setup(window_ms=60_000, max_wait_ms=120_000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    results = await store.apply(
        [
            (message("m1", now), now),
            (message("m2", now), now),
            (message("m3", now, kind="postback"), now),
        ]
    )
    assert results[-1].deadline_ms <= await redis_now_ms(redis)
    # A later message before the closer runs joins the due window; the deadline stays.
    [late] = await store.apply([(message("m4", now), now)])
    assert late.deadline_ms == results[-1].deadline_ms
    await closer.close_due()
    [batch] = await batches(redis, keys)
    assert batch["close_reason"] == "flush"
    assert len(batch["messages"]) == 4


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [({"max_messages": 3}, "max_messages"), ({"max_bytes": 198}, "max_bytes")],
)
async def test_a_cap_is_a_hard_limit_the_next_message_opens_the_next_window(
    setup: Setup, redis: aioredis.Redis, overrides: dict[str, int], reason: str
) -> None:
    store, closer, keys = setup(window_ms=60_000, max_wait_ms=120_000, **overrides)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    # 66 bytes each (mid, kind, text, attachments and raw as JSON): three reach 198.
    text = "x" * 40
    results = await store.apply([(message(f"m{i}", now, text=text), now) for i in (1, 2, 3)])
    assert results[-1].deadline_ms <= await redis_now_ms(redis)
    # The message that would pass the cap emits the full window in the same step (before any
    # closer runs) and opens the next one.
    [late] = await store.apply([(message("m4", now, text=text), now)])
    assert late.status == OPENED
    [full] = await batches(redis, keys)
    assert full["close_reason"] == reason
    assert [m["mid"] for m in full["messages"]] == ["m1", "m2", "m3"]
    await closer.close_due(everything=True)
    full, rest = await batches(redis, keys)
    assert [m["mid"] for m in rest["messages"]] == ["m4"]
    assert rest["seq"] == full["seq"] + 1


async def test_max_wait_close_reason(setup: Setup, redis: aioredis.Redis) -> None:
    store, closer, keys = setup(window_ms=40, max_wait_ms=60)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    await store.apply([(message("m1", now), now), (message("m2", now + 30), now)])
    await closer.drain()
    [batch] = await batches(redis, keys)
    assert batch["close_reason"] == "max_wait"


async def test_edit_and_unsend(setup: Setup, redis: aioredis.Redis) -> None:
    store, closer, keys = setup(window_ms=30)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    results = await store.apply(
        [
            (message("m1", now, text="helo"), now),
            (message("m2", now + 1, text="oops"), now),
            (message("m3", now + 2, text="bye"), now),
            (message("m1#edit1", now + 3, kind="edit", text="hello", target="m1"), now),
            (message("m2#deleted", now + 4, kind="unsend", target="m2"), now),
            (message("m2#deleted", now + 4, kind="unsend", target="m2"), now),
        ]
    )
    assert [r.status for r in results] == [OPENED, ADDED, ADDED, EDITED, REMOVED, DUPLICATE]
    await closer.drain()
    [batch] = await batches(redis, keys)
    assert [m["mid"] for m in batch["messages"]] == ["m1", "m3"]
    assert batch["text"] == "hello\nbye"


async def test_window_emptied_by_unsends_emits_nothing(setup: Setup, redis: aioredis.Redis) -> None:
    store, closer, keys = setup(window_ms=20)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    await store.apply(
        [
            (message("m1", now), now),
            (message("m1#deleted", now, kind="unsend", target="m1"), now),
        ]
    )
    assert await closer.drain() == 0
    assert await batches(redis, keys) == []
    # A late unsend (window gone) and a late edit (a message of its own).
    late = await store.apply(
        [
            (message("x#deleted", now, kind="unsend", target="x"), now),
            (message("m1#edit1", now, kind="edit", text="new", target="m1"), now),
        ]
    )
    assert [r.status for r in late] == [LATE_UNSEND, OPENED]
    await closer.drain()
    [batch] = await batches(redis, keys)
    assert (batch["text"], batch["messages"][0]["kind"]) == ("new", "edit")
    assert await life_seqs(redis, keys, [batch]) == [1]


async def test_several_conversations_and_two_shards(setup: Setup, redis: aioredis.Redis) -> None:
    store, closer, keys = setup(shards=2, window_ms=20)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    users = [f"user{i}" for i in range(20)]
    await store.apply(
        [(message(f"{u}-{n}", now + n, user=u), now) for u in users for n in range(3)]
    )
    assert await closer.drain() == 20
    found = await batches(redis, keys)
    assert sorted(b["user_id"] for b in found) == sorted(users)
    assert all(len(b["messages"]) == 3 for b in found)
    assert set(await life_seqs(redis, keys, found)) == {1}
    for shard in range(2):
        on_shard = {b["conversation"] for b in found if keys.shard_of(b["conversation"]) == shard}
        assert on_shard, "both shards get conversations"


async def test_flush_one_conversation(setup: Setup, redis: aioredis.Redis) -> None:
    store, closer, keys = setup(window_ms=60_000, max_wait_ms=60_000)
    await store.load_scripts()
    now = await redis_now_ms(redis)
    await store.apply([(message("a", now, user="a"), now), (message("b", now, user="b"), now)])
    assert await store.flush("messenger:p1:a")
    assert not await store.flush("messenger:p1:nobody")
    emitted, next_deadline, _ = await closer.close_due()
    assert emitted == 1
    assert next_deadline is not None
    assert [b["user_id"] for b in await batches(redis, keys)] == ["a"]
    emitted, next_deadline, _ = await closer.close_due(everything=True)
    assert (emitted, next_deadline) == (1, None)
