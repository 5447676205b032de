"""The sender under hostile answers, from the bot or from the Graph API: an answer that
would flood one user is refused whole (a dead letter with its reason, nothing sent, the
conversation's next batch still answered), and nothing from outside reaches a dead letter
or a log line at more than its bound."""

from __future__ import annotations

import time
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from lull.dev.fake_graph import FakeGraph, ScriptedError
from tests.sender.conftest import MakeSender, emit
from tests.sender.fake_bot import FakeBot

Entries = list[tuple[bytes, dict[bytes, bytes]]]
# A dead-letter reason: 1000 characters of it, the "… (N more characters)" mark and a prefix.
MAX_REASON_CHARS = 1100


def replies(*items: dict[str, Any]) -> bytes:
    return orjson.dumps({"replies": list(items)})


# name: (platform, account, user, the bot's answer, what the reason must say)
FLOODS: dict[str, tuple[str, str, str, bytes, str]] = {
    "text_1_mb": ("messenger", "p1", "u1", replies({"text": "x " * 500_000}),
                  "LULL_MAX_REPLY_PARTS"),
    "one_word_1_mb": ("messenger", "p1", "u1", replies({"text": "x" * 1_000_000}),
                      "LULL_MAX_REPLY_PARTS"),
    "emoji_1_mb_instagram": ("instagram", "ig1", "u1", replies({"text": "😀" * 250_000}),
                             "bytes"),
    "text_1_mb_whatsapp": ("whatsapp", "wa1", "15550001111", replies({"text": "w " * 500_000}),
                           "LULL_MAX_REPLY_PARTS"),
    "six_parts": ("messenger", "p1", "u1", replies({"text": ("y" * 1999 + " ") * 6}),
                  "LULL_MAX_REPLY_PARTS"),
    "replies_10_000": ("messenger", "p1", "u1", replies(*[{"text": "hi"}] * 10_000),
                       "LULL_MAX_SENDS_PER_BATCH"),
    "replies_21": ("messenger", "p1", "u1", replies(*[{"text": "hi"}] * 21),
                   "LULL_MAX_SENDS_PER_BATCH"),
    "images_21": ("whatsapp", "wa1", "15550001111",
                  replies(*[{"attachment": {"type": "image", "url": "https://x.test/a.png"}}] * 21),
                  "LULL_MAX_SENDS_PER_BATCH"),
    "option_titles_1_mb_whatsapp": (
        "whatsapp", "wa1", "15550001111",
        replies({"attachment": {"type": "image", "url": "https://x.test/a.png"},
                 "quick_replies": [{"title": "t " * 40_000, "payload": "p"}] * 13}),
        "LULL_MAX_REPLY_PARTS"),
}  # fmt: skip


async def dead_reasons(redis: aioredis.Redis, stream: str) -> list[str]:
    entries = cast(Entries, await redis.xrange(stream))
    return [fields[b"_reason"].decode() for _id, fields in entries]


@pytest.mark.parametrize("case", FLOODS.values(), ids=FLOODS.keys())
async def test_a_flooding_answer_sends_nothing_and_is_a_bounded_dead_letter(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    case: tuple[str, str, str, bytes, str],
) -> None:
    platform, account, user, answer, says = case
    async with FakeBot("") as bot:
        sender = await make_sender(LULL_HANDLER=bot.url)
        keys = sender.keys
        bot.script(body=answer)
        await emit(redis, keys, user, 1, "hello", platform=platform, account=account)
        started = time.monotonic()
        await sender.drain()
        assert time.monotonic() - started < 10
        assert graph.sent == []
        [reason] = await dead_reasons(redis, keys.dead())
        assert reason.startswith("answer too long, nothing sent: "), reason[:200]
        assert says in reason and len(reason) <= MAX_REASON_CHARS
        # The conversation goes on.
        bot.script(body=replies({"text": "fine"}))
        await emit(redis, keys, user, 2, "again", platform=platform, account=account)
        await sender.drain()
        assert len(graph.sent) == 1


@pytest.mark.parametrize(("status", "code"), [(400, 100), (503, 2)], ids=["permanent", "retried"])
async def test_a_graph_error_of_megabytes_is_bounded_in_the_dead_letter_and_the_log(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, status: int, code: int
) -> None:
    sender = await make_sender(LULL_SEND_MAX_ATTEMPTS="2")
    huge = "\x1b[2J" + "e" * 2_000_000
    graph.script([ScriptedError(status, code, huge, details=huge)] * 3, latency_ms=0)
    await emit(redis, sender.keys, "u1", 1, "hello")
    with capture_logs() as logs:
        await sender.drain()
    [reason] = await dead_reasons(redis, sender.keys.dead())
    assert len(reason) <= MAX_REASON_CHARS
    events = [entry["event"] for entry in logs]
    assert ("batch retried" in events) == (status == 503)
    assert all(len(orjson.dumps(entry, default=str)) < 4_000 for entry in logs)
