"""A conversation's state expires, through the real processor and sender: everything lull
keeps about it goes together, a new life neither repeats nor swallows a batch, and a
conversation left in 0.1's shard-wide hashes is moved without losing exactly-once."""

from __future__ import annotations

import time
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis

from lull.common.consumer import Entry
from lull.common.store.keys import Keys
from lull.common.store.legacy import LegacyKeys
from lull.dev.fake_graph import FakeGraph
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from lull.sender.app import Sender
from tests.processor.windowing import redis_now_ms
from tests.sender.conftest import MakeSender, sent_texts

CONVERSATION = "messenger:p1:u1"
EXPIRY_WAIT_S = 5.0
Entries = list[tuple[bytes, dict[bytes, bytes]]]


@pytest.fixture
def processor(redis: aioredis.Redis, base_env: dict[str, str]) -> Processor:
    env = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000", **base_env}
    return Processor(redis, ProcessorSettings.from_env(env))


async def say(redis: aioredis.Redis, keys: Keys, mid: str, text: str) -> None:
    """What ingest stores for one Messenger message from u1 to page p1."""
    now = await redis_now_ms(redis)
    item = {
        "sender": {"id": "u1"}, "recipient": {"id": "p1"}, "timestamp": now,
        "message": {"mid": mid, "text": text},
    }  # fmt: skip
    body = orjson.dumps(
        {"object": "page", "entry": [{"id": "p1", "time": now, "messaging": [item]}]}
    )
    fields = {"body": body, "received_at": int(time.time() * 1000), "sig": "ok"}
    await redis.xadd(keys.inbound(), fields)  # type: ignore[arg-type]


async def turn(
    redis: aioredis.Redis, processor: Processor, sender: Sender, mid: str, text: str
) -> None:
    """The user writes once; the processor emits the batch and the sender finishes it."""
    await say(redis, processor.keys, mid, text)
    assert await processor.drain() == 1
    await sender.drain()


async def expire_now(redis: aioredis.Redis, keys: Keys) -> None:
    """Let the conversation's keys expire as LULL_CONVERSATION_TTL_S would, by Redis's own
    expiry (1 ms from now), and wait for it on the Redis clock (bounded)."""
    names = [keys.conversation_state(CONVERSATION), keys.history(CONVERSATION)]
    for name in names:
        await redis.pexpire(name, 1)
    deadline = await redis_now_ms(redis) + EXPIRY_WAIT_S * 1000
    while await redis.exists(*names):
        assert await redis_now_ms(redis) < deadline, "the state did not expire"


async def outbound_batches(redis: aioredis.Redis, keys: Keys) -> list[dict[str, Any]]:
    entries = cast(Entries, await redis.xrange(keys.outbound(0)))
    return [orjson.loads(fields[b"batch"]) for _, fields in entries]


async def test_every_write_refreshes_one_expiry_for_the_state_and_the_history(
    redis: aioredis.Redis, processor: Processor, make_sender: MakeSender
) -> None:
    sender = await make_sender()
    keys = processor.keys
    before = await redis_now_ms(redis)
    await say(redis, keys, "m1", "hello")
    assert await processor.drain() == 1
    state_key = keys.conversation_state(CONVERSATION)
    state = await redis.hgetall(state_key)
    # A new life: seq and delivered start at a base from the Redis clock; seq is its first.
    base = int(state[b"delivered"])
    assert before <= base <= await redis_now_ms(redis)
    assert int(state[b"seq"]) == base + 1
    # The user's last message on the Redis clock, not after the batch closed.
    [batch] = await outbound_batches(redis, keys)
    assert batch["seq"] == base + 1
    assert before <= int(state[b"user_last_ms"]) <= batch["closed_at"]
    ttl_s = 691_200  # LULL_CONVERSATION_TTL_S's default
    assert ttl_s - 5 <= await redis.ttl(state_key) <= ttl_s

    await sender.drain()
    assert await redis.hget(state_key, "delivered") == str(base + 1).encode()
    assert ttl_s - 5 <= await redis.ttl(state_key) <= ttl_s
    assert ttl_s - 5 <= await redis.ttl(keys.history(CONVERSATION)) <= ttl_s
    # Nothing else of the conversation is kept for ever: every key of the namespace but the
    # streams (trimmed) and the window's seen ids (dedupe TTL) expires.
    for name in await redis.keys(f"{keys.namespace}:*"):
        kind = await redis.type(name)
        assert kind == b"stream" or await redis.ttl(name) > 0, name


async def test_after_expiry_a_new_message_is_answered_once_and_an_old_batch_not_again(
    redis: aioredis.Redis, processor: Processor, make_sender: MakeSender, graph: FakeGraph
) -> None:
    sender = await make_sender()
    keys = processor.keys
    await turn(redis, processor, sender, "m1", "first life")
    await turn(redis, processor, sender, "m2", "still first life")
    old = await outbound_batches(redis, keys)
    await expire_now(redis, keys)

    await turn(redis, processor, sender, "m3", "second life")
    assert sent_texts(graph) == [
        ("u1", "first life"), ("u1", "still first life"), ("u1", "second life"),
    ]  # fmt: skip
    new = (await outbound_batches(redis, keys))[-1]
    # seq went on above every seq of the first life; a stale copy of a first-life batch (a
    # claimed entry, a late replay) is skipped as a duplicate, not answered again.
    assert new["seq"] > max(b["seq"] for b in old)
    for batch in old:
        await redis.xadd(keys.outbound(0), {"batch": orjson.dumps(batch)})
    await sender.drain()
    await turn(redis, processor, sender, "m4", "and on")
    assert [text for _, text in sent_texts(graph)] == [
        "first life", "still first life", "second life", "and on",
    ]  # fmt: skip
    assert (await outbound_batches(redis, keys))[-1]["seq"] == new["seq"] + 1


async def test_a_batch_older_than_its_expired_state_is_skipped_and_starts_no_answer(
    redis: aioredis.Redis, processor: Processor, make_sender: MakeSender, graph: FakeGraph
) -> None:
    sender = await make_sender()
    keys = processor.keys
    await turn(redis, processor, sender, "m1", "answered")
    [batch] = await outbound_batches(redis, keys)
    await expire_now(redis, keys)
    # Nothing is known of the conversation any more: a copy of its batch is not answered.
    await redis.xadd(keys.outbound(0), {"batch": orjson.dumps(batch)})
    await sender.drain()
    assert sent_texts(graph) == [("u1", "answered")]
    assert (await redis.xpending(keys.outbound(0), "sender"))["pending"] == 0


async def _batch_of_0_1(
    redis: aioredis.Redis, keys: Keys, seq: int, text: str, *, dead: bool = False
) -> dict[str, Any]:
    """A batch on the outbound stream as 0.1's close script wrote it (seq from 1); a dead
    one was moved to the dead letters (not written here)."""
    now = await redis_now_ms(redis)
    batch = {
        "batch_id": f"{CONVERSATION}:{seq}", "seq": seq, "platform": "messenger",
        "account_id": "p1", "user_id": "u1", "conversation": CONVERSATION,
        "messages": [{"mid": f"old{seq}", "event_time": now, "received_at": now, "kind": "text",
                      "text": text, "attachments": [], "raw": {}}],
        "text": text, "first_event_time": now, "last_event_time": now, "opened_at": now,
        "closed_at": now, "close_reason": "gap",
    }  # fmt: skip
    if not dead:
        await redis.xadd(keys.outbound(0), {"batch": orjson.dumps(batch)})
    return batch


# 0.1's batches carry no `version`: such a batch in a stream at the upgrade is what this
# test is about (the sender reads it as version 1), not a contract break of 0.2's processor.
@pytest.mark.not_a_batch
async def test_upgrade_from_0_1_moves_the_conversation_and_keeps_order_and_exactly_once(
    redis: aioredis.Redis, processor: Processor, make_sender: MakeSender, graph: FakeGraph
) -> None:
    keys = processor.keys
    legacy = LegacyKeys.of(keys, 0)
    # 0.1's layout, left by a stopped 0.1 deployment: batch 1 delivered, batch 2 pending,
    # batch 3 dead-lettered before batch 2 (0.1's dead-seq mark), batch 4 pending; batch 3's
    # letter is replayable (0.1's dead-batch mark). Other conversations share the hashes.
    await _batch_of_0_1(redis, keys, 1, "one")
    await _batch_of_0_1(redis, keys, 2, "two")
    three = await _batch_of_0_1(redis, keys, 3, "three", dead=True)
    await _batch_of_0_1(redis, keys, 4, "four")
    await redis.hset(legacy.seq, mapping={CONVERSATION: 4, "messenger:p1:other": 9})
    await redis.hset(legacy.delivered, mapping={CONVERSATION: 1, "messenger:p1:other": 9})
    await redis.hset(legacy.dead_seqs, f"{CONVERSATION}|3", 1)
    await redis.hset(legacy.dead_batches, three["batch_id"], "0-1")
    sender = await make_sender()
    # This test's group is new, so batch 1, finished by 0.1, is read again: a duplicate.
    await say(redis, keys, "m5", "five")
    assert await processor.drain() == 1  # the processor moves the conversation first
    state_key = keys.conversation_state(CONVERSATION)
    moved = await redis.hgetall(state_key)
    assert (moved[b"seq"], moved[b"delivered"], moved[b"deadseq:3"]) == (b"5", b"1", b"1")
    assert await redis.hget(legacy.seq, CONVERSATION) is None
    assert await redis.hget(legacy.delivered, CONVERSATION) is None
    assert await redis.hlen(legacy.dead_seqs) == 0
    assert await redis.hget(legacy.seq, "messenger:p1:other") == b"9"  # not this one's

    await sender.drain()
    # In order, once: 1 was delivered by 0.1, 3 is dead (counted as finished), 5 is new.
    assert [text for _, text in sent_texts(graph)] == ["two", "four", "five"]
    assert await redis.hget(state_key, "delivered") == b"5"
    # The replay of 0.1's dead batch 3 is delivered once (its 0.1 mark counts), then used up.
    for _ in range(2):
        await redis.xadd(keys.outbound(0), {"batch": orjson.dumps(three)})
        await sender.drain()
    assert [text for _, text in sent_texts(graph)] == ["two", "four", "five", "three"]
    assert await redis.hlen(legacy.dead_batches) == 0
    assert ttl_of(await redis.ttl(state_key))


def ttl_of(ttl_s: int) -> bool:
    return 0 < ttl_s <= 691_200


async def test_upgrade_when_the_sender_writes_first_moves_the_conversation_too(
    redis: aioredis.Redis, processor: Processor, make_sender: MakeSender, graph: FakeGraph
) -> None:
    keys = processor.keys
    legacy = LegacyKeys.of(keys, 0)
    await _batch_of_0_1(redis, keys, 7, "seven")
    await redis.hset(legacy.seq, CONVERSATION, 7)
    await redis.hset(legacy.delivered, CONVERSATION, 6)
    sender = await make_sender()
    await sender.drain()
    assert sent_texts(graph) == [("u1", "seven")]
    state = await redis.hgetall(keys.conversation_state(CONVERSATION))
    assert (state[b"seq"], state[b"delivered"]) == (b"7", b"7")
    assert await redis.hget(legacy.seq, CONVERSATION) is None
    # The next batch continues 0.1's numbering.
    await turn(redis, processor, sender, "m8", "eight")
    assert (await outbound_batches(redis, keys))[-1]["seq"] == 8
    assert [text for _, text in sent_texts(graph)] == ["seven", "eight"]


async def test_a_dead_mark_lives_and_expires_with_the_conversation(
    redis: aioredis.Redis, processor: Processor, make_sender: MakeSender, graph: FakeGraph
) -> None:
    sender = await make_sender()
    keys = processor.keys
    await say(redis, keys, "m1", "died")
    assert await processor.drain() == 1
    [(entry_id, fields)] = cast(Entries, await redis.xrange(keys.outbound(0)))
    batch = orjson.loads(fields[b"batch"])
    # Dead-lettered (say, claimed too often): finished as dead, marked in the state hash.
    await sender.deliverer.mark_dead(Entry(keys.outbound(0), entry_id.decode(), fields, 6))
    state_key = keys.conversation_state(CONVERSATION)
    assert await redis.hget(state_key, keys.dead_batch_field(batch["seq"])) == entry_id
    assert await redis.ttl(state_key) > 0
    await expire_now(redis, keys)
    # Replayed after its conversation's state expired: nothing tells whether it was
    # answered, so it is skipped, never answered twice.
    await redis.xadd(keys.outbound(0), {"batch": orjson.dumps(batch)})
    await sender.drain()
    assert sent_texts(graph) == []
    await turn(redis, processor, sender, "m2", "a new life")
    assert sent_texts(graph) == [("u1", "a new life")]
