"""The contract check of every test (tests/conftest.py, tests/sender/fake_bot.py) finds a
wrong batch: were it blind, the suite's batches would prove nothing about the schema."""

from __future__ import annotations

import orjson
import pytest
import redis.asyncio as aioredis

from lull.common.batch import Batch, Message
from lull.common.store.keys import Keys
from lull.sender.bot import build_bot
from tests.contract.check import outbound_problems, problems
from tests.sender.fake_bot import FakeBot


def _batch(user: str = "u1") -> dict[str, object]:
    """A valid batch as the processor writes it (no history: that is the sender's)."""
    message = Message(
        mid="m1", event_time=5, received_at=6, kind="text", text="hi", attachments=[], raw={}
    )
    conversation = f"messenger:p1:{user}"
    return Batch(
        batch_id=f"{conversation}:1", seq=1, platform="messenger", account_id="p1", user_id=user,
        conversation=conversation, messages=[message], text="hi", first_event_time=5,
        last_event_time=5, opened_at=6, closed_at=9, close_reason="gap",
    ).to_dict()  # fmt: skip


def test_a_valid_batch_with_every_history_role_passes() -> None:
    history = [
        {"role": "user", "mid": "m0", "text": "hello", "time": 1},
        {"role": "bot", "text": "hi, how can I help?", "mid": "m_sent_1"},
        {"role": "bot", "text": ""},
        {"role": "human", "mid": "m_echo_1", "text": "Anna here", "time": 3},
        {"role": "human", "mid": "m_echo_2", "text": "", "time": 3, "app_id": "263902037430900"},
        {"role": "status", "status": "failed", "mid": "m_sent_1", "time": 4, "code": None,
         "title": "", "message": "", "details": ""},
    ]  # fmt: skip
    assert problems("batch", {**_batch(), "history": history}) == []


@pytest.mark.parametrize(
    ("change", "found"),
    [
        ({"version": None}, "'version' is a required property"),
        ({"version": 2}, "1 was expected"),
        ({"seq": "1"}, "seq: '1' is not of type 'integer'"),
        ({"platform": "telegram"}, "platform: 'telegram' is not one of"),
        ({"messages": []}, "messages: [] should be non-empty"),
        ({"messages": [{"mid": "m1"}]}, "messages/0: 'event_time' is a required property"),
        ({"history": [{"role": "bot"}]}, "history/0: {'role': 'bot'} is not valid"),
        ({"history": [{"role": "robot", "text": "x"}]}, "history/0"),
    ],
)
def test_a_wrong_batch_is_named(change: dict[str, object], found: str) -> None:
    doc = {**_batch(), "history": [], **change}
    doc = {key: value for key, value in doc.items() if value is not None}
    assert any(found in problem for problem in problems("batch", doc)), problems("batch", doc)


@pytest.mark.not_a_batch  # what it puts on the stream is wrong on purpose
async def test_the_teardown_check_finds_wrong_batches_and_history_items(
    redis: aioredis.Redis, namespace: str
) -> None:
    keys = Keys(namespace, 2)
    good, no_version, bad_history = _batch("u1"), _batch("u2"), _batch("u3")
    del no_version["version"]
    for doc in (good, no_version, bad_history):
        shard = keys.shard_of(str(doc["conversation"]))
        await redis.xadd(keys.outbound(shard), {"batch": orjson.dumps(doc)})
    await redis.rpush(keys.history("messenger:p1:u1"), orjson.dumps({"role": "user", "mid": "m0",
                      "text": "hello", "time": 1}))  # fmt: skip
    await redis.rpush(keys.history("messenger:p1:u3"), orjson.dumps({"role": "user", "mid": "m0"}))
    await redis.xadd(keys.outbound(0), {"n": "1"})

    found = await outbound_problems(redis, namespace)

    assert len(found) == 3, found
    assert any("'version' is a required property" in p for p in found)
    assert any("history/0" in p for p in found)
    assert any("batch is not JSON" in p for p in found)


async def test_the_fake_bot_refuses_to_have_received_a_wrong_batch() -> None:
    doc = {**_batch(), "history": [], "seq": 0}
    with pytest.raises(AssertionError, match="seq: 0 is less than the minimum of 1"):
        async with FakeBot("") as bot:
            handler = await build_bot(bot.url, secret="", timeout_ms=2000)
            try:
                await handler(doc)
            finally:
                await handler.close()
