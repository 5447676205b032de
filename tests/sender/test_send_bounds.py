"""The bound on the Send API messages one answer becomes: LULL_MAX_REPLY_PARTS per reply,
LULL_MAX_SENDS_PER_BATCH per batch. Over it, nothing is sent and the batch is a dead letter
with the reason; the conversation's next batch still goes."""

from __future__ import annotations

import time
from typing import cast

import orjson
import pytest
import redis.asyncio as aioredis

from lull.common.batch import Batch
from lull.common.env import ConfigError
from lull.common.replies import Reply
from lull.common.store.conversations import read_conversation
from lull.dev.fake_graph import FakeGraph
from lull.sender.sends.bounds import TooManySends, bounded_requests
from lull.sender.settings import SenderSettings
from tests.sender.conftest import MakeSender, emit, sent_texts
from tests.sender.fake_bot import FakeBot

Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def dead_reasons(redis: aioredis.Redis, stream: str) -> list[str]:
    entries = cast(Entries, await redis.xrange(stream))
    return [fields[b"_reason"].decode() for _id, fields in entries]


def words(chars: int) -> str:
    """Words of 9 letters and a space, chars characters in all (a multiple of 10)."""
    return " ".join(["abcdefghi"] * (chars // 10)) + " "


async def test_a_1_mb_reply_sends_nothing_and_is_a_dead_letter_with_the_reason(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()  # echo: the reply is the user's 1 MB text
    keys = sender.keys
    await emit(redis, keys, "u1", 1, "x " * 500_000)
    await emit(redis, keys, "u1", 2, "short one")
    started = time.monotonic()
    await sender.drain()
    assert time.monotonic() - started < 5
    assert sent_texts(graph) == [("u1", "short one")]
    [reason] = await dead_reasons(redis, keys.dead())
    assert reason.startswith("answer too long, nothing sent: replies[0].text is 1000000")
    assert "LULL_MAX_REPLY_PARTS" in reason
    state = await read_conversation(redis, keys, "messenger:p1:u1")
    assert [(o.seq, o.outcome, o.replies) for o in state.outcomes] == [
        (2, "sent", 1), (1, "dead", 0),
    ]  # fmt: skip


PLATFORMS = [
    ("messenger", "p1", "u1", 2000),
    ("instagram", "ig1", "u1", 999),
    ("whatsapp", "wa1", "15550001111", 4096),
]


@pytest.mark.parametrize("where", PLATFORMS, ids=[p[0] for p in PLATFORMS])
async def test_a_reply_of_exactly_the_parts_goes_and_one_more_part_does_not(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    where: tuple[str, str, str, int],
) -> None:
    platform, account, user, limit = where
    sender = await make_sender(LULL_MAX_REPLY_PARTS="3")
    keys = sender.keys
    fits = "y" * limit + (" " + "y" * (limit - 1)) * 2  # three full messages
    await emit(redis, keys, user, 1, fits, platform=platform, account=account)
    await sender.drain()
    assert len(graph.sent) == 3
    await emit(redis, keys, user, 2, fits + " z", platform=platform, account=account)
    await sender.drain()
    assert len(graph.sent) == 3
    [reason] = await dead_reasons(redis, keys.dead())
    assert "at most 3 (LULL_MAX_REPLY_PARTS)" in reason or "more than 3 messages" in reason


async def test_more_replies_than_the_batch_may_send_send_none_of_them(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    async with FakeBot("s") as bot:
        sender = await make_sender(
            LULL_HANDLER=bot.url, LULL_HANDLER_SECRET="s", LULL_MAX_SENDS_PER_BATCH="4"
        )
        keys = sender.keys
        four = orjson.dumps({"replies": [{"text": f"r{n}"} for n in range(4)]})
        bot.script(body=four)
        await emit(redis, keys, "u1", 1, "four replies")
        await sender.drain()
        assert [text for _user, text in sent_texts(graph)] == ["r0", "r1", "r2", "r3"]
        # Three replies, the last cut in three: five messages, one over.
        five = [{"text": "a"}, {"text": "b"}, {"text": "c " * 2500}]
        bot.script(body=orjson.dumps({"replies": five}))
        await emit(redis, keys, "u1", 2, "five messages")
        await sender.drain()
        assert len(graph.sent) == 4
        [reason] = await dead_reasons(redis, keys.dead())
        assert "more than 4 messages (LULL_MAX_SENDS_PER_BATCH)" in reason


def test_a_huge_text_is_refused_before_it_is_split(base_env: dict[str, str]) -> None:
    fields = {"version": 1, "batch_id": "b", "seq": 1, "platform": "instagram",
              "account_id": "ig1", "user_id": "u1", "conversation": "instagram:ig1:u1",
              "messages": [], "text": "", "first_event_time": 1, "last_event_time": 1,
              "opened_at": 1, "closed_at": 1, "close_reason": "gap"}  # fmt: skip
    batch = Batch.decode(orjson.dumps(fields))
    # 75 MB (a 2-byte character and a space, 25 million times): splitting it would take
    # minutes (its size times its parts).
    huge = Reply(text="é " * 25_000_000, attachment=None, quick_replies=None)
    started = time.monotonic()
    with pytest.raises(TooManySends, match="75000000 bytes"):
        bounded_requests(batch, [huge], "v23.0", max_reply_parts=5, max_sends=20)
    assert time.monotonic() - started < 2


BAD_BOUNDS = [
    ("LULL_MAX_REPLY_PARTS", "0"),
    ("LULL_MAX_SENDS_PER_BATCH", "0"),
    ("LULL_MAX_REPLY_PARTS", "many"),
    ("LULL_MAX_SENDS_PER_BATCH", "1001"),
]


@pytest.mark.parametrize(("name", "value"), BAD_BOUNDS)
def test_bad_bounds_are_refused_at_start(sender_env: dict[str, str], name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        SenderSettings.from_env({**sender_env, name: value})


def test_the_defaults(sender_env: dict[str, str]) -> None:
    settings = SenderSettings.from_env(sender_env)
    assert (settings.max_reply_parts, settings.max_sends_per_batch) == (5, 20)
