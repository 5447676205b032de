"""Every error code in the table, answered by the fake Graph API to a real sender: a throttle
is waited out and sent, a temporary error is retried until LULL_SEND_MAX_ATTEMPTS, a
permanent one is dead-lettered at once, Meta's 24-hour window error finishes the batch
`window_closed` (neither retried nor dead-lettered).

Each case is one Send API error answer in the shape Meta documents (`error.message`,
`type`, `code`, and for WhatsApp `error_data.details`). Statuses are those Meta's pages give
where they give one, 400 otherwise: the sender decides on the code, as Meta advises. Titles
and details are Meta's where its pages quote them (see sender/graph/errors.py for the pages).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple, cast

import pytest
import redis.asyncio as aioredis

from lull.dev.fake_graph import FakeGraph, ScriptedError
from lull.sender.graph.errors import KNOWN_CODES
from tests.sender.conftest import MakeSender, emit, sent_texts

Entries = list[tuple[bytes, dict[bytes, bytes]]]
ACCOUNTS = {"messenger": "p1", "instagram": "ig1", "whatsapp": "wa1"}
# A WhatsApp user is a phone number (digits): anything else is a business-scoped user id.
USERS = {"messenger": "u1", "instagram": "u1", "whatsapp": "16315551234"}
DAY_MS = 24 * 3600 * 1000


class Case(NamedTuple):
    platform: str
    status: int
    code: int
    message: str
    kind: str
    details: str | None = None
    subcode: int | None = None


CASES = [
    Case("messenger", 400, 4, "(#4) Application request limit reached", "throttle"),
    Case("messenger", 400, 17, "(#17) User request limit reached", "throttle"),
    Case("messenger", 400, 32, "(#32) Page request limit reached", "throttle"),
    Case("messenger", 400, 613, "(#613) Calls to this api have exceeded the rate limit.",
         "throttle"),
    Case("messenger", 400, 80001, "(#80001) Pages rate limit", "throttle"),
    Case("instagram", 400, 80002, "(#80002) Instagram rate limit", "throttle"),
    Case("messenger", 400, 80006, "(#80006) Messenger rate limit", "throttle"),
    Case("whatsapp", 400, 80007, "(#80007) Rate limit issues", "throttle"),
    Case(
        "whatsapp", 400, 130429, "(#130429) Rate limit hit", "throttle",
        "Message failed to send because there were too many messages sent from this phone "
        "number in a short period of time",
    ),
    Case(
        "whatsapp", 400, 131048, "(#131048) Spam rate limit hit", "throttle",
        "Message failed to send because there are restrictions on how many messages can be "
        "sent from this phone number. This may be because too many previous messages were "
        "blocked or flagged as spam.",
    ),
    Case(
        "whatsapp", 400, 131056,
        "(#131056) (Business Account, Consumer Account) pair rate limit hit", "throttle",
        "Message failed to send because there were too many messages sent from this phone "
        "number to the same phone number in a short period of time",
    ),
    Case("messenger", 500, 1, "An unknown error occurred.", "temporary"),
    Case("messenger", 503, 2, "An unexpected error has occurred. Please retry your request later.",
         "temporary"),
    Case("messenger", 500, 1200, "Temporary send message failure. Please try again later.",
         "temporary"),
    Case(
        "whatsapp", 500, 131000, "(#131000) Something went wrong", "temporary",
        "Message failed to send due to an unknown error.",
    ),
    Case("whatsapp", 503, 131016, "(#131016) Service unavailable", "temporary",
         "A service is temporarily unavailable."),
    Case("whatsapp", 400, 131057, "(#131057) Account in maintenance mode", "temporary"),
    Case("whatsapp", 503, 133004, "(#133004) Server temporarily unavailable", "temporary"),
    Case("whatsapp", 401, 0, "(#0) AuthException", "permanent"),
    Case("whatsapp", 500, 3, "(#3) Capability or permissions issue.", "permanent"),
    Case("messenger", 400, 10, "(#10) This message is sent outside of allowed window.",
         "permanent"),
    Case("messenger", 400, 100, "(#100) No matching user found", "permanent"),
    Case("messenger", 401, 190, "Invalid OAuth access token.", "permanent"),
    Case("instagram", 403, 200, "(#200) The user isn't available", "permanent"),
    Case("whatsapp", 403, 368, "(#368) Temporarily blocked for policies violations", "permanent"),
    Case("messenger", 400, 551, "(#551) This person isn't available right now.", "permanent"),
    Case("whatsapp", 400, 131026, "(#131026) Message undeliverable", "permanent"),
    Case("messenger", 400, 10, "(#10) This message is sent outside of allowed window.",
         "window", subcode=2018278),
    Case("instagram", 400, 10, "(#10) This message is sent outside of allowed window.",
         "window", subcode=2018278),
    Case(
        "whatsapp", 400, 131047, "(#131047) Re-engagement message", "window",
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
    ),
    Case(
        "whatsapp", 400, 131049,
        "(#131049) This message was not delivered to maintain healthy ecosystem engagement.",
        "permanent",
    ),
    Case("whatsapp", 400, 131051, "(#131051) Unsupported message type", "permanent"),
]  # fmt: skip


def test_every_code_in_the_table_has_a_case_of_its_kind() -> None:
    cases = [case for case in CASES if case.code in KNOWN_CODES and case.subcode is None]
    assert {case.code: case.kind for case in cases} == {
        code: kind for code, (kind, _meaning) in KNOWN_CODES.items()
    }


async def dead_letters(redis: aioredis.Redis, stream: str) -> list[str]:
    entries = cast(Entries, await redis.xrange(stream))
    return [fields[b"_reason"].decode() for _id, fields in entries]


def sent_to(graph: FakeGraph) -> int:
    return len(graph.sent)


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.platform}-{case.code}-{case.kind}")
async def test_the_sender_does_what_the_table_says(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, case: Case
) -> None:
    # Two attempts: a temporary error answered twice gives up, a throttle answered twice
    # does not (it waits as Meta asks), a permanent error stops at the first answer.
    sender = await make_sender(LULL_SEND_MAX_ATTEMPTS="2")
    error = ScriptedError(
        case.status, case.code, case.message, subcode=case.subcode, details=case.details
    )
    graph.script([error, error], latency_ms=0)
    platform = case.platform
    await emit(
        redis,
        sender.keys,
        USERS[platform],
        1,
        "hello",
        platform=platform,
        account=ACCOUNTS[platform],
    )
    await sender.drain()
    dead = await dead_letters(redis, sender.keys.dead())
    meta_waits = sender.registry.get_sample_value(
        "lull_sender_rate_limit_waits_total", {"scope": "meta"}
    )
    if case.kind == "throttle":
        assert dead == []
        assert sent_to(graph) == 1
        assert meta_waits == 2
    elif case.kind == "window":
        assert dead == []
        # One request reached the fake; the batch was finished there, not retried.
        assert (sent_to(graph), len(graph.errors)) == (0, 1)
        finished = sender.registry.get_sample_value(
            "lull_sender_deliveries_total", {"outcome": "window_closed"}
        )
        assert finished == 1
    elif case.kind == "temporary":
        assert len(dead) == 1
        assert dead[0].startswith("gave up after 2 attempts: temporary: ")
        assert f"code {case.code}" in dead[0]
        assert (sent_to(graph), len(graph.errors)) == (0, 0)
        assert meta_waits is None
    else:
        assert dead == [f"graph api: code {case.code}: {case.message}" + _details(case)]
        # One request reached the fake; the second scripted answer was never asked for.
        assert (sent_to(graph), len(graph.errors)) == (0, 1)
        assert meta_waits is None


def _details(case: Case) -> str:
    return f": {case.details}" if case.details else ""


async def test_a_throttle_is_not_waited_out_past_the_24_hour_reply_window(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    # The user wrote just under 24 hours ago; Meta throttles the reply; by the come-back the
    # window has closed: the batch finishes window_closed, as one that came that late would.
    sender = await make_sender()
    throttle = ScriptedError(400, 131048, "(#131048) Spam rate limit hit",
                             headers={"Retry-After": "1"})  # fmt: skip
    graph.script([throttle], latency_ms=0)
    await emit(redis, sender.keys, USERS["whatsapp"], 1, "late", platform="whatsapp", account="wa1",
               age_ms=DAY_MS - 500)  # fmt: skip
    await emit(redis, sender.keys, "u2", 1, "fresh")
    await sender.drain()
    assert await dead_letters(redis, sender.keys.dead()) == []
    assert sent_texts(graph) == [("u2", "fresh")]
    assert [s for s in graph.sent if "messaging_product" in s["payload"]] == []
    finished = sender.registry.get_sample_value(
        "lull_sender_deliveries_total", {"outcome": "window_closed"}
    )
    assert finished == 1
    # The reply did reach Meta once (and was throttled) before the window closed.
    meta_waits = sender.registry.get_sample_value(
        "lull_sender_rate_limit_waits_total", {"scope": "meta"}
    )
    assert meta_waits == 1


async def test_throttles_do_not_use_up_attempts_but_failures_still_do(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    # Five throttles and one temporary failure with two attempts allowed: the batch is sent.
    sender = await make_sender(LULL_SEND_MAX_ATTEMPTS="2")
    throttle = ScriptedError(400, 130429, "(#130429) Rate limit hit")
    graph.script([throttle] * 5 + [ScriptedError(503, 2, "down")], latency_ms=0)
    await emit(redis, sender.keys, "u1", 1, "hello")
    await sender.drain()
    assert sent_texts(graph) == [("u1", "hello")]
    assert await dead_letters(redis, sender.keys.dead()) == []


def test_the_docs_table_says_what_the_code_does() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "sending.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Graph API errors") :]
    rows = re.findall(
        r"^\| (\d+) \| (.+?) \| (throttle|temporary|permanent|window) \|$", section, re.M
    )
    assert {int(code): (kind, meaning) for code, meaning, kind in rows} == dict(KNOWN_CODES)
