"""The bot hands off: its replies first, then thread control (Messenger, Instagram), the
pause and the CRM webhook; each step once, also across retries; a failing webhook neither
stops the pause nor dead-letters the batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from lull.common import signing
from lull.common.store.conversations import read_conversation
from lull.common.store.deliveries import SendState
from lull.common.store.pauses import PauseStore
from lull.dev.fake_graph import FakeGraph, ScriptedError
from lull.sender.app import Sender
from lull.sender.bot import SIGNATURE_HEADER
from lull.sender.graph.client import GraphRequest
from tests.sender.conftest import MakeSender, emit, sent_texts

SECRET = "handler-secret"
PAGE_INBOX = "263902037430900"
WA_USER = "16315551234"
HANDOFF_BOT = "python:tests.sender.bot_module:hand_off"
SILENT_HANDOFF_BOT = "python:tests.sender.bot_module:hand_off_silently"


@dataclass
class FakeCrm:
    """Records every handoff POST; answers the scripted statuses first, then 200."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """One notification."""
        self.received.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies received, in order."""
        return [orjson.loads(body) for _, body in self.received]


@pytest.fixture
async def crm() -> AsyncIterator[tuple[FakeCrm, str]]:
    """A CRM webhook on loopback, and its URL."""
    fake = FakeCrm()
    app = web.Application()
    app.router.add_post("/lull/handoff", fake.handle)
    server = TestServer(app)
    await server.start_server()
    yield fake, str(server.make_url("/lull/handoff"))
    await server.close()


async def handoff_sender(make_sender: MakeSender, url: str, **overrides: str) -> Sender:
    """A sender whose bot hands off, passing threads to the Page Inbox, telling the CRM."""
    settings = {
        "LULL_HANDLER": HANDOFF_BOT, "LULL_HANDLER_SECRET": SECRET,
        "LULL_HANDOFF_TARGET": "page_inbox", "LULL_HANDOFF_WEBHOOK": url,
    }  # fmt: skip
    return await make_sender(**{**settings, **overrides})


def handoffs(sender: Sender, platform: str, outcome: str) -> float | None:
    """lull_sender_handoffs_total{platform, outcome}."""
    labels = {"platform": platform, "outcome": outcome}
    return sender.registry.get_sample_value("lull_sender_handoffs_total", labels)


async def pause_of(redis: aioredis.Redis, sender: Sender, conversation: str) -> Any:
    """The conversation's pause as the sender's store reads it."""
    return await PauseStore(redis, sender.keys, sender.deliverer.settings.pause).read(conversation)


async def test_text_first_then_thread_control_then_pause_and_a_signed_webhook(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, crm: tuple[FakeCrm, str]
) -> None:
    fake_crm, url = crm
    sender = await handoff_sender(make_sender, url)
    batch = await emit(redis, sender.keys, "u1", 1, "I want my money back")
    await sender.drain()

    assert sent_texts(graph) == [("u1", "A person will answer you here.")]
    [passed] = graph.thread_control
    assert passed["account_id"] == "p1"
    assert passed["payload"] == {
        "recipient": {"id": "u1"}, "target_app_id": PAGE_INBOX, "metadata": "asked for a refund",
    }  # fmt: skip
    # After the text: the fake numbers both from one counter.
    assert passed["order"] > int(graph.sent[0]["message_id"].removeprefix("m_FAKE"))

    pause = await pause_of(redis, sender, "messenger:p1:u1")
    assert pause is not None
    # The inbox owns the thread now: held until it passes it back (or the cap).
    assert (pause.reason, pause.by, pause.hold) == ("asked for a refund", "bot", True)

    [(headers, body)] = fake_crm.received
    assert signing.check(headers[SIGNATURE_HEADER], body, (SECRET,)) is None
    assert headers["X-Lull-Delivery"] == batch["batch_id"]
    notice = orjson.loads(body)
    assert notice["conversation"] == "messenger:p1:u1"
    assert notice["reason"] == "asked for a refund"
    assert notice["replies_sent"] == 1
    assert notice["thread_control_target_app_id"] == PAGE_INBOX
    assert notice["paused_until_ms"] == pause.until_ms
    assert notice["batch"]["messages"][0]["text"] == "I want my money back"

    state = await read_conversation(redis, sender.keys, "messenger:p1:u1")
    assert (state.delivered, state.outcomes[0].outcome, state.outcomes[0].replies) == (
        1, "handoff", 1,
    )  # fmt: skip
    history = [
        orjson.loads(i) for i in await redis.lrange(sender.keys.history("messenger:p1:u1"), 0, -1)
    ]
    assert [h["role"] for h in history] == ["user", "bot"]  # the thread control is no reply
    assert handoffs(sender, "messenger", "paused") == 1
    assert handoffs(sender, "messenger", "thread_control_passed") == 1


async def test_whatsapp_only_pauses_and_notifies(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, crm: tuple[FakeCrm, str]
) -> None:
    fake_crm, url = crm
    sender = await handoff_sender(make_sender, url)
    await emit(redis, sender.keys, WA_USER, 1, "agent please", platform="whatsapp", account="wa1")
    await sender.drain()

    assert [s["payload"]["text"]["body"] for s in graph.sent] == ["A person will answer you here."]
    assert graph.thread_control == []
    conversation = f"whatsapp:wa1:{WA_USER}"
    pause = await pause_of(redis, sender, conversation)
    assert pause is not None and not pause.hold  # a human's turn: ends after the quiet time
    assert [b["conversation"] for b in fake_crm.bodies()] == [conversation]
    assert fake_crm.bodies()[0]["thread_control_target_app_id"] is None
    assert handoffs(sender, "whatsapp", "paused") == 1


async def test_a_handoff_without_text_passes_and_pauses(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, crm: tuple[FakeCrm, str]
) -> None:
    fake_crm, url = crm
    sender = await handoff_sender(make_sender, url, LULL_HANDLER=SILENT_HANDOFF_BOT)
    await emit(redis, sender.keys, "u1", 1, "!!!")
    await sender.drain()

    assert graph.sent == []
    assert [p["payload"]["metadata"] for p in graph.thread_control] == ["angry customer"]
    pause = await pause_of(redis, sender, "messenger:p1:u1")
    assert pause is not None and pause.reason == "angry customer"
    assert fake_crm.bodies()[0]["replies_sent"] == 0
    state = await read_conversation(redis, sender.keys, "messenger:p1:u1")
    assert [(o.outcome, o.replies) for o in state.outcomes] == [("handoff", 0)]


async def test_without_a_target_messenger_only_pauses(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, crm: tuple[FakeCrm, str]
) -> None:
    _, url = crm
    sender = await handoff_sender(make_sender, url, LULL_HANDOFF_TARGET="none")
    await emit(redis, sender.keys, "u1", 1, "help")
    await sender.drain()
    assert len(graph.sent) == 1
    assert graph.thread_control == []
    assert await pause_of(redis, sender, "messenger:p1:u1") is not None


async def test_a_failing_webhook_is_retried_without_resending_then_given_up(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, crm: tuple[FakeCrm, str]
) -> None:
    fake_crm, url = crm
    fake_crm.statuses = [500, 500, 500, 500]
    sender = await handoff_sender(make_sender, url, LULL_HANDOFF_WEBHOOK_ATTEMPTS="3")
    await emit(redis, sender.keys, "u1", 1, "refund")
    await sender.drain()

    # Three POSTs, each a retry of the batch: the text and the thread control went once.
    assert len(fake_crm.received) == 3
    assert len({headers["X-Lull-Delivery"] for headers, _ in fake_crm.received}) == 1
    assert len(graph.sent) == 1
    assert len(graph.thread_control) == 1
    # The pause holds and the batch is finished, not dead.
    assert await pause_of(redis, sender, "messenger:p1:u1") is not None
    keys = sender.keys
    assert await redis.hget(keys.conversation_state("messenger:p1:u1"), "delivered") == b"1"
    assert (await redis.xpending(keys.outbound(0), "sender"))["pending"] == 0
    assert await redis.xlen(keys.dead()) == 0
    assert sender.registry.get_sample_value("lull_sender_handoff_notify_failures_total") == 3
    assert handoffs(sender, "messenger", "notify_failed") == 1


async def test_a_webhook_that_recovers_is_told_once_and_nothing_is_sent_twice(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, crm: tuple[FakeCrm, str]
) -> None:
    fake_crm, url = crm
    fake_crm.statuses = [503]
    sender = await handoff_sender(make_sender, url)
    await emit(redis, sender.keys, "u1", 1, "refund")
    await sender.drain()
    assert len(fake_crm.received) == 2
    assert len(graph.sent) == 1
    assert len(graph.thread_control) == 1
    assert handoffs(sender, "messenger", "paused") == 1


async def test_thread_control_refused_for_good_still_pauses(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, crm: tuple[FakeCrm, str]
) -> None:
    _, url = crm
    sender = await handoff_sender(make_sender, url, LULL_HANDLER=SILENT_HANDOFF_BOT)
    # The first request is the thread control (no text): Meta refuses it for good.
    graph.script([ScriptedError(403, 200, "(#200) Permissions error")], latency_ms=0)
    await emit(redis, sender.keys, "u1", 1, "hello?")
    await sender.drain()
    assert graph.thread_control == []
    pause = await pause_of(redis, sender, "messenger:p1:u1")
    assert pause is not None and not pause.hold
    assert await redis.xlen(sender.keys.dead()) == 0
    assert handoffs(sender, "messenger", "thread_control_refused") == 1


def test_the_handoff_progress_survives_a_save_and_a_read() -> None:
    state = SendState(
        requests=[GraphRequest("p1", "/v23.0/p1/pass_thread_control", {"x": 1}, "messenger")],
        sent=1, message_ids=["thread_control:passed"], handoff="refund",
        handoff_paused_until_ms=1_700_000_000_000, handoff_failures=2,
    )  # fmt: skip
    saved = {str(k).encode(): v if isinstance(v, bytes) else str(v).encode()
             for k, v in state.encode().items()}  # fmt: skip
    assert SendState.decode(saved) == state
    assert SendState.decode({}).handoff is None


async def test_instagram_passes_to_the_instagram_inbox(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, crm: tuple[FakeCrm, str]
) -> None:
    _, url = crm
    sender = await handoff_sender(make_sender, url)
    await emit(redis, sender.keys, "u1", 1, "human please", platform="instagram", account="ig1")
    await sender.drain()
    assert len(graph.sent) == 1
    # Instagram with Facebook Login sends as `me`, the Page the token belongs to.
    [passed] = graph.thread_control
    assert passed["payload"]["target_app_id"] == "1217981644879628"
    assert passed["payload"]["recipient"] == {"id": "u1"}
    assert handoffs(sender, "instagram", "thread_control_passed") == 1
