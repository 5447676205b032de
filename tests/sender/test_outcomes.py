"""The sender remembers each conversation's last finished batches for operators: capped,
newest first, expiring like the history, written in the finish step's pipeline."""

from __future__ import annotations

import redis.asyncio as aioredis

from lull.common.store.conversations import read_conversation
from lull.common.store.outcomes import OutcomeRecord
from lull.dev.fake_graph import FakeGraph
from tests.sender.conftest import MakeSender, emit


async def test_outcomes_are_capped_newest_first_and_expire(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_OUTCOMES_KEPT="3")
    keys = sender.keys
    for seq in range(1, 6):
        await emit(redis, keys, "u1", seq, f"message {seq}")
    await emit(redis, keys, "u1", 2, "message 2")  # a copy after a crash: a duplicate
    await sender.drain()
    state = await read_conversation(redis, keys, "messenger:p1:u1")
    assert [(o.seq, o.outcome, o.replies) for o in state.outcomes] == [
        (5, "sent", 1), (4, "sent", 1), (3, "sent", 1),
    ]  # fmt: skip
    assert state.delivered == 5
    assert state.last_user_message_from == "batch"
    assert 0 < await redis.ttl(keys.outcomes("messenger:p1:u1")) <= 691_200


async def test_no_outcomes_are_kept_with_zero(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_OUTCOMES_KEPT="0")
    await emit(redis, sender.keys, "u1", 1, "hi")
    await sender.drain()
    assert await redis.exists(sender.keys.outcomes("messenger:p1:u1")) == 0


def test_a_record_leaves_out_only_a_batch_id_it_can_rebuild() -> None:
    own = OutcomeRecord("messenger:p1:u1:7", 7, "sent", 1, 1_000, 900)
    assert b"batch_id" not in own.encode("messenger:p1:u1")
    assert OutcomeRecord.decode(own.encode("messenger:p1:u1"), "messenger:p1:u1") == own
    other = OutcomeRecord("replayed-elsewhere", 7, "dead", 0, 1_000, 900)
    assert OutcomeRecord.decode(other.encode("messenger:p1:u1"), "messenger:p1:u1") == other
    assert OutcomeRecord.decode(b"not json", "messenger:p1:u1") is None
    assert OutcomeRecord.decode(b'{"outcome": "sent"}', "messenger:p1:u1") is None
