"""The sender end to end against the fake Graph API and a fake bot on loopback."""

from __future__ import annotations

import asyncio
import random
import time
from typing import cast

import orjson
import redis.asyncio as aioredis
from prometheus_client import generate_latest

from lull.common.consumer import Entry
from lull.dev.fake_graph import FakeGraph, ScriptedError
from tests.sender.conftest import MakeSender, emit, sent_texts
from tests.sender.fake_bot import FakeBot

Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def dead_letters(redis: aioredis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in cast(Entries, await redis.xrange(stream))]


async def test_echo_reply_is_sent_marked_and_acked(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    keys = sender.keys
    await emit(redis, keys, "u1", 1, "hi\nI have\na problem")
    await sender.drain()
    assert sent_texts(graph) == [("u1", "hi\nI have\na problem")]
    payload = graph.sent[0]["payload"]
    assert payload["messaging_type"] == "RESPONSE"
    state = keys.conversation_state("messenger:p1:u1")
    assert await redis.hget(state, "delivered") == b"1"
    assert (await redis.xpending(keys.outbound(0), "sender"))["pending"] == 0
    history = [orjson.loads(i) for i in await redis.lrange(keys.history("messenger:p1:u1"), 0, -1)]
    assert [(h["role"], h["text"]) for h in history] == [
        ("user", "hi\nI have\na problem"),
        ("bot", "hi\nI have\na problem"),
    ]


async def test_redelivered_batch_is_skipped_not_sent_twice(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    await emit(redis, sender.keys, "u1", 1, "once")
    await sender.drain()
    await emit(redis, sender.keys, "u1", 1, "once")  # the same seq again, as after a crash
    await sender.drain()
    assert sent_texts(graph) == [("u1", "once")]
    text = generate_latest(sender.registry).decode()
    assert 'lull_sender_deliveries_total{outcome="duplicate"} 1.0' in text


async def test_two_replicas_keep_every_conversation_in_seq_order(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    one = await make_sender(LULL_SHARDS="2")
    two = await make_sender(LULL_SHARDS="2")
    users = [f"u{n}" for n in range(200)]
    for seq in range(1, 6):
        order = users[:]
        random.shuffle(order)
        for user in order:
            await emit(redis, one.keys, user, seq, f"{user} batch {seq}")
    await asyncio.gather(one.drain(), two.drain())
    await asyncio.gather(one.drain(), two.drain())
    by_user: dict[str, list[str]] = {}
    for user, text in sent_texts(graph):
        by_user.setdefault(user, []).append(text)
    assert len(by_user) == 200
    for user, texts in by_user.items():
        assert texts == [f"{user} batch {seq}" for seq in range(1, 6)]


async def test_long_text_is_split_in_order(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    words = [f"w{n:04d}" for n in range(900)]  # 4,499 characters
    await emit(redis, sender.keys, "u1", 1, " ".join(words))
    await sender.drain()
    chunks = [text for _user, text in sent_texts(graph)]
    assert len(chunks) == 3
    assert all(len(c) <= 2000 for c in chunks)
    assert " ".join(chunks).split() == words


async def test_throttling_and_5xx_are_retried_then_sent(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    graph.script(
        [ScriptedError(429, 4, "Application request limit reached")] * 2
        + [ScriptedError(500, 2, "Service temporarily unavailable")] * 2,
        latency_ms=0,
    )
    await emit(redis, sender.keys, "u1", 1, "hello")
    await sender.drain()
    assert sent_texts(graph) == [("u1", "hello")]
    text = generate_latest(sender.registry).decode()
    assert 'lull_sender_deliveries_total{outcome="retried"} 4.0' in text


async def test_permanent_error_dead_letters_and_the_next_batch_still_goes(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    graph.script([ScriptedError(400, 100, "Invalid parameter")], latency_ms=0)
    await emit(redis, sender.keys, "u1", 1, "first")
    await emit(redis, sender.keys, "u1", 2, "second")
    await sender.drain()
    assert sent_texts(graph) == [("u1", "second")]
    [dead] = await dead_letters(redis, sender.keys.dead())
    assert b"code 100" in dead[b"_reason"]
    assert b'"seq":1' in dead[b"batch"]


async def test_missing_token_and_exhausted_retries_are_dead_letters(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_SEND_MAX_ATTEMPTS="3")
    await emit(redis, sender.keys, "u1", 1, "to nowhere", account="unknown-page")
    graph.script([ScriptedError(503, 1, "unknown error")] * 10, latency_ms=0)
    await emit(redis, sender.keys, "u2", 1, "never accepted")
    await sender.drain()
    reasons = sorted(d[b"_reason"].decode() for d in await dead_letters(redis, sender.keys.dead()))
    assert len(reasons) == 2
    assert any("unknown-page" in r for r in reasons)
    assert any("gave up after 3 attempts" in r for r in reasons)
    assert graph.sent == []


async def test_handler_errors_and_timeouts(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    async with FakeBot("bot-secret") as bot:
        sender = await make_sender(
            LULL_HANDLER=bot.url,
            LULL_HANDLER_SECRET="bot-secret",
            LULL_HANDLER_TIMEOUT_MS="100",
            LULL_SEND_MAX_ATTEMPTS="3",
        )
        bot.script(statuses=(500, 503))
        await emit(redis, sender.keys, "u1", 1, "retried twice")
        await sender.drain()
        assert sent_texts(graph) == [("u1", "echo: retried twice")]
        bot.script(latency_ms=1000)
        await emit(redis, sender.keys, "u2", 1, "too slow")
        await sender.drain()
        [dead] = await dead_letters(redis, sender.keys.dead())
        assert b"gave up after 3 attempts" in dead[b"_reason"]
        bot.script(statuses=(404,))
        await emit(redis, sender.keys, "u3", 1, "not found")
        await sender.drain()
        assert len(await dead_letters(redis, sender.keys.dead())) == 2


async def test_history_reaches_the_handler(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    async with FakeBot("s") as bot:
        sender = await make_sender(LULL_HANDLER=bot.url, LULL_HANDLER_SECRET="s")
        await emit(redis, sender.keys, "u1", 1, "first")
        await sender.drain()
        await emit(redis, sender.keys, "u1", 2, "second")
        await sender.drain()
        first, second = bot.received
        assert first["history"] == []
        assert [(h["role"], h["text"]) for h in second["history"]] == [
            ("user", "first"),
            ("bot", "echo: first"),
        ]
    assert len(graph.sent) == 2


async def test_supersede_on_and_off(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    keep = await make_sender()
    await emit(redis, keep.keys, "u1", 1, "one")
    await emit(redis, keep.keys, "u1", 2, "one two")
    await keep.drain()
    assert sent_texts(graph) == [("u1", "one"), ("u1", "one two")]

    drop = await make_sender(LULL_SUPERSEDE="1")
    await emit(redis, drop.keys, "u2", 1, "one")
    await emit(redis, drop.keys, "u2", 2, "one two")
    await drop.drain()
    assert [t for u, t in sent_texts(graph) if u == "u2"] == ["one two"]
    text = generate_latest(drop.registry).decode()
    assert 'lull_sender_deliveries_total{outcome="superseded"} 1.0' in text


async def test_a_flooding_user_does_not_delay_others(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_RATE_PER_USER="1/1h:1")
    for seq in range(1, 4):
        await emit(redis, sender.keys, "flood", seq, f"flood {seq}")
    for user in ("a", "b", "c"):
        await emit(redis, sender.keys, user, 1, f"{user} here")
    task = asyncio.create_task(sender.run())
    deadline = time.monotonic() + 10
    registry = sender.registry

    def limited() -> float:
        value = registry.get_sample_value("lull_sender_rate_limit_waits_total", {"scope": "user"})
        return value or 0.0

    # Watch the fake's record (bounded): the others get through while flood is held back.
    while (len(graph.sent) < 4 or not limited()) and time.monotonic() < deadline:  # noqa: ASYNC110  (another server's state, bounded)
        await asyncio.sleep(0.01)
    sender.request_stop()
    await task
    assert sorted(sent_texts(graph)) == sorted(
        [("flood", "flood 1"), ("a", "a here"), ("b", "b here"), ("c", "c here")]
    )
    assert limited() >= 1


async def test_crash_between_read_and_ack_is_recovered_by_another_replica(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_CLAIM_IDLE_MS="10")
    keys = sender.keys
    await emit(redis, keys, "u1", 1, "orphaned")
    stream = keys.outbound(0)
    await redis.xgroup_create(stream, "sender", id="0", mkstream=True)
    # A replica that read the batch and died before acking it.
    await redis.xreadgroup("sender", "crashed-replica", {stream: ">"}, count=10)
    for _ in range(100):
        await sender.drain()
        if graph.sent:
            break
        await asyncio.sleep(0.01)  # until the entry has been idle claim_idle_ms
    assert sent_texts(graph) == [("u1", "orphaned")]
    assert (await redis.xpending(stream, "sender"))["pending"] == 0


async def test_a_retried_send_reuses_the_replies_without_calling_the_bot_again(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    async with FakeBot("s") as bot:
        sender = await make_sender(LULL_HANDLER=bot.url, LULL_HANDLER_SECRET="s")
        graph.script([ScriptedError(429, 613, "Calls to this api have exceeded the rate limit")],
                     latency_ms=0)  # fmt: skip
        await emit(redis, sender.keys, "u1", 1, "hello")
        await sender.drain()
        assert len(bot.received) == 1
    assert sent_texts(graph) == [("u1", "echo: hello")]
    assert await redis.exists(sender.keys.send_state(0, "messenger:p1:u1:1")) == 0


async def test_a_batch_dead_lettered_before_its_predecessor_does_not_skip_it(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    keys = sender.keys
    for seq in (1, 2, 3):
        await emit(redis, keys, "u1", seq, f"batch {seq}")
    stream = keys.outbound(0)
    [second] = [
        Entry(stream, entry_id.decode(), fields, 6)
        for entry_id, fields in cast(Entries, await redis.xrange(stream))
        if b'"seq":2' in fields[b"batch"]
    ]
    # Batch 2 was dead-lettered (say, claimed too often) while batch 1 was still pending.
    await sender.deliverer.mark_dead(second)
    state = keys.conversation_state("messenger:p1:u1")
    assert await redis.hget(state, "delivered") == b"0"
    assert await redis.hget(state, keys.dead_seq_field(2)) == b"1"
    await sender.drain()
    assert sent_texts(graph) == [("u1", "batch 1"), ("u1", "batch 3")]
    assert await redis.hget(state, "delivered") == b"3"
    assert not await redis.hexists(state, keys.dead_seq_field(2))
