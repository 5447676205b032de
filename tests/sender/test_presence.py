"""What the user sees besides replies: read, typing while the bot works, paced sends; all
best-effort (a presence failure or a tight rate limit changes nothing about the reply)."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import generate_latest

from lull.common.env import ConfigError
from lull.common.store.pauses import PauseAction
from lull.dev.fake_graph import FakeGraph, ScriptedError
from lull.sender.app import Sender
from lull.sender.bot import Reached
from lull.sender.presence.settings import PresenceSettings
from lull.sender.rates.rate import parse_rate
from lull.sender.settings import SenderSettings
from tests.sender.conftest import MakeSender, emit

WA_USER = "15550000002"


class AfterPresence:
    """A bot that answers only once the fake Graph has received `calls` presence calls (or,
    with `idle`, once the sender's presence work has ended), so the order is the test's."""

    name = "after-presence"
    forward_only = False

    def __init__(
        self,
        graph: FakeGraph,
        calls: int,
        replies: list[dict[str, Any]],
        sender: Sender | None = None,
    ) -> None:
        self.graph = graph
        self.calls = calls
        self.replies = replies
        self.sender = sender

    async def __call__(
        self, batch: dict[str, Any], reached: Reached | None = None
    ) -> list[dict[str, Any]]:
        """The replies, after the presence calls the test waits for."""
        if reached is not None:
            reached()  # on its way at once, as a python: handler
        await self.graph.wait_presence(self.calls)
        if self.sender is not None:
            await self.sender.deliverer.presence.idle()
        return self.replies

    async def close(self) -> None:
        """Nothing to release."""


def actions(graph: FakeGraph) -> list[str]:
    """The presence calls the fake accepted, in order, by what they show."""
    found = []
    for call in graph.presence:
        payload = call["payload"]
        if "sender_action" in payload:
            found.append(payload["sender_action"])
        else:
            found.append("read_typing" if "typing_indicator" in payload else "read")
    return found


def presence_count(sender: Sender, action: str, outcome: str) -> float:
    """lull_sender_presence_total{action, outcome}."""
    labels = {"action": action, "outcome": outcome}
    return sender.registry.get_sample_value("lull_sender_presence_total", labels) or 0.0


async def settle(sender: Sender) -> None:
    """Deliver until idle, then until no presence work is left in flight."""
    await sender.drain()
    await sender.deliverer.presence.idle()


@pytest.mark.parametrize("platform,account", [("messenger", "p1"), ("instagram", "ig1")])
async def test_messenger_and_instagram_see_seen_then_typing_then_the_reply(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, platform: str, account: str
) -> None:
    sender = await make_sender()
    sender.deliverer.bot = AfterPresence(graph, 2, [{"text": "hi"}])
    await emit(redis, sender.keys, "u1", 1, "hello", platform=platform, account=account)
    await settle(sender)
    assert actions(graph) == ["mark_seen", "typing_on"]
    assert [c["payload"]["recipient"] for c in graph.presence] == [{"id": "u1"}] * 2
    assert [s["payload"]["message"]["text"] for s in graph.sent] == ["hi"]
    assert graph.sent[0]["at_ms"] >= graph.presence[-1]["at_ms"]
    assert presence_count(sender, "mark_seen", "sent") == 1


async def test_whatsapp_sees_its_last_message_read_with_typing_in_one_call(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    sender.deliverer.bot = AfterPresence(graph, 1, [{"text": "hi"}])
    batch = await emit(redis, sender.keys, WA_USER, 1, "hello", platform="whatsapp", account="wa1")
    await settle(sender)
    assert [c["payload"] for c in graph.presence] == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": batch["messages"][-1]["mid"],
            "typing_indicator": {"type": "text"},
        }
    ]
    assert graph.presence[0]["account_id"] == "wa1"
    assert len(graph.sent) == 1 and graph.sent[0]["at_ms"] >= graph.presence[0]["at_ms"]


async def test_a_bot_that_answers_nothing_turns_typing_off(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    # Both bots answer once both users were shown read and typing (3 calls in all).
    sender.deliverer.bot = AfterPresence(graph, 3, [])
    await emit(redis, sender.keys, "u1", 1, "ok thanks")
    await emit(redis, sender.keys, WA_USER, 1, "ok", platform="whatsapp", account="wa1")
    await settle(sender)
    by_user: dict[str, list[str]] = {}
    for call, action in zip(graph.presence, actions(graph), strict=True):
        user = call["payload"].get("recipient", {}).get("id", "wa")
        by_user.setdefault(user, []).append(action)
    # WhatsApp has no typing off: the indicator ends by itself after 25 s.
    assert by_user == {"u1": ["mark_seen", "typing_on", "typing_off"], "wa": ["read_typing"]}
    assert graph.sent == []


async def test_typing_is_refreshed_while_a_slow_bot_works_and_stops_with_the_reply(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_TYPING_REFRESH_MS="30")
    sender.deliverer.bot = AfterPresence(graph, 4, [{"text": "at last"}])
    await emit(redis, sender.keys, "u1", 1, "a hard question")
    await settle(sender)
    assert actions(graph)[:4] == ["mark_seen", "typing_on", "typing_on", "typing_on"]
    typing_at = [c["at_ms"] for c in graph.presence if c["payload"]["sender_action"] == "typing_on"]
    # at_ms is whole ms: a 30 ms wait may show as 29.
    assert all(b - a >= 29 for a, b in pairwise(typing_at))
    assert len(graph.sent) == 1
    assert sender.deliverer.presence.running == 0


async def test_nothing_is_shown_for_the_none_handler(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_HANDLER="none")
    await emit(redis, sender.keys, "u1", 1, "hello")
    await emit(redis, sender.keys, WA_USER, 1, "hello", platform="whatsapp", account="wa1")
    await settle(sender)
    assert graph.presence_calls == 0 and graph.sent == []


class PausedWhileThinking:
    """A bot during whose work a human takes the conversation: it answers once the sender's
    pause hook has been asked (the first refresh after the pause)."""

    name = "paused-while-thinking"
    forward_only = False

    def __init__(self, graph: FakeGraph, sender: Sender, asked: asyncio.Event) -> None:
        self.graph, self.sender, self.asked = graph, sender, asked

    async def __call__(
        self, batch: dict[str, Any], reached: Reached | None = None
    ) -> list[dict[str, Any]]:
        """Wait for mark_seen and typing_on, pause the conversation, wait for the hook."""
        if reached is not None:
            reached()  # on its way at once, as a python: handler
        await self.graph.wait_presence(2)
        await self.sender.pauses.apply(batch["conversation"], PauseAction.OPERATOR, by="ann")
        await self.asked.wait()
        return [{"text": "too late"}]

    async def close(self) -> None:
        """Nothing to release."""


async def test_a_pause_that_begins_while_the_bot_works_stops_the_typing(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_TYPING_REFRESH_MS="10")
    presence = sender.deliverer.presence
    real = presence.should_show
    assert real is not None  # the sender wires the pause in (sender/app.py)
    answers: list[bool] = []
    asked = asyncio.Event()

    async def recorded(conversation: str) -> bool:
        answers.append(await real(conversation))
        asked.set()
        return answers[-1]

    presence.should_show = recorded
    sender.deliverer.bot = PausedWhileThinking(graph, sender, asked)
    await emit(redis, sender.keys, "u1", 1, "hello")
    await settle(sender)
    # The first calls follow the sender's own pause check; the refresh asks, finds the pause
    # and ends the batch's presence; the same-moment rule then drops the bot's reply, and
    # the typing the user saw is turned off: a human has the conversation now.
    assert answers == [False]
    assert actions(graph) == ["mark_seen", "typing_on", "typing_off"]
    assert graph.sent == []


async def test_settings_turn_read_and_typing_off(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_READ_RECEIPTS="off", LULL_TYPING="off")
    sender.deliverer.bot = AfterPresence(graph, 0, [{"text": "hi"}], sender=sender)
    await emit(redis, sender.keys, "u1", 1, "hello")
    await emit(redis, sender.keys, WA_USER, 1, "hello", platform="whatsapp", account="wa1")
    await settle(sender)
    assert graph.presence_calls == 0 and len(graph.sent) == 2


async def test_read_only_when_typing_is_off(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_TYPING="off")
    sender.deliverer.bot = AfterPresence(graph, 0, [{"text": "hi"}], sender=sender)
    await emit(redis, sender.keys, "u1", 1, "hello")
    await emit(redis, sender.keys, WA_USER, 1, "hello", platform="whatsapp", account="wa1")
    await settle(sender)
    assert sorted(actions(graph)) == ["mark_seen", "read"]


async def test_failed_presence_changes_nothing_about_the_reply(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    unavailable = ScriptedError(500, 2, "Service temporarily unavailable")
    graph.script([], 0, presence_errors=[unavailable] * 10)
    # The bot answers once both calls reached the fake: the first one's failure is counted.
    sender.deliverer.bot = AfterPresence(graph, 2, [{"text": "still here"}])
    await emit(redis, sender.keys, "u1", 1, "hello")
    await settle(sender)
    assert [s["payload"]["message"]["text"] for s in graph.sent] == ["still here"]
    assert graph.presence == []
    assert presence_count(sender, "mark_seen", "failed") == 1
    text = generate_latest(sender.registry).decode()
    assert 'lull_sender_deliveries_total{outcome="sent"} 1.0' in text
    assert 'lull_sender_deliveries_total{outcome="retried"}' not in text
    assert await redis.xlen(sender.keys.dead()) == 0


async def test_a_presence_call_that_hangs_does_not_hold_the_reply(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_GRAPH_TIMEOUT_MS="3000")
    # Every presence call takes 1 s; the bot answers once the first two have arrived.
    graph.script([], 0, presence_latency_ms=1000)
    sender.deliverer.bot = AfterPresence(graph, 2, [{"text": "hi"}])
    await emit(redis, sender.keys, "u1", 1, "hello")
    await emit(redis, sender.keys, WA_USER, 1, "hello", platform="whatsapp", account="wa1")
    await sender.drain()
    # Both replies are out while the presence calls are still in the fake's hands.
    assert len(graph.sent) == 2
    assert graph.presence == [] and graph.presence_calls >= 1
    text = generate_latest(sender.registry).decode()
    assert 'lull_sender_deliveries_total{outcome="sent"} 2.0' in text


async def test_presence_yields_to_replies_under_a_tight_rate_limit(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_RATE_GLOBAL="10/s", LULL_TYPING="off")
    rate = parse_rate("10/s")
    assert rate is not None
    key = sender.keys.account_rate("p1")
    # Replies of other batches hold the next two slots: none is free now.
    for _ in range(2):
        assert (await sender.limiter.acquire(key, rate, horizon_ms=250)).taken
    sender.deliverer.bot = AfterPresence(graph, 0, [{"text": "hi"}], sender=sender)
    await emit(redis, sender.keys, "u1", 1, "hello")
    await settle(sender)
    assert presence_count(sender, "mark_seen", "dropped_rate") == 1
    assert graph.presence_calls == 0
    assert [s["payload"]["message"]["text"] for s in graph.sent] == ["hi"]


async def test_replies_and_chunks_are_paced_with_typing_between(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    delay_ms = 80
    sender = await make_sender(LULL_REPLY_DELAY_MS=str(delay_ms), LULL_READ_RECEIPTS="off")
    long_text = " ".join(["word"] * 500)  # 2499 characters: two Messenger chunks
    replies = [{"text": "first"}, {"text": long_text}]
    sender.deliverer.bot = AfterPresence(graph, 1, replies)
    await emit(redis, sender.keys, "u1", 1, "tell me everything")
    await settle(sender)
    sent_at = [s["at_ms"] for s in graph.sent]
    assert len(sent_at) == 3
    # Lower bounds only: a busy machine may pace slower, never faster. Whole ms: -1.
    assert all(b - a >= delay_ms - 1 for a, b in pairwise(sent_at))
    # Typing at pick-up, then once in each of the two gaps.
    assert actions(graph) == ["typing_on"] * 3


async def test_pacing_per_character(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_REPLY_DELAY_PER_CHAR_MS="2", LULL_TYPING="off")
    sender.deliverer.bot = AfterPresence(graph, 1, [{"text": "a"}, {"text": "x" * 60}])
    await emit(redis, sender.keys, "u1", 1, "hello")
    await settle(sender)
    first, second = (s["at_ms"] for s in graph.sent)
    assert second - first >= 2 * 60 - 1


async def test_whatsapp_sends_to_one_user_keep_to_the_per_user_send_limit(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_SEND_RATE_PER_USER="2/1s:2", LULL_TYPING="off")
    replies = [{"text": f"part {n}"} for n in range(3)]
    sender.deliverer.bot = AfterPresence(graph, 1, replies)
    await emit(redis, sender.keys, WA_USER, 1, "hello", platform="whatsapp", account="wa1")
    await settle(sender)
    sent_at = [s["at_ms"] for s in graph.sent]
    assert [s["payload"]["text"]["body"] for s in graph.sent] == ["part 0", "part 1", "part 2"]
    # 2 back to back, the third one interval (505 ms) after the first.
    assert sent_at[2] - sent_at[0] >= 500
    waits = sender.registry.get_sample_value(
        "lull_sender_rate_limit_waits_total", {"scope": "user_send"}
    )
    assert waits and waits >= 1


def test_presence_settings_per_account_and_their_errors(sender_env: dict[str, str]) -> None:
    settings = SenderSettings.from_env(sender_env)
    assert settings.presence_for("p1") == PresenceSettings()
    assert settings.presence_for("p1").refresh_ms("whatsapp") == 20_000
    assert settings.presence_for("p1").refresh_ms("messenger") == 15_000
    paced = SenderSettings.from_env({**sender_env, "LULL_REPLY_DELAY_MS": "500"})
    assert paced.presence_for("wa1").gap_ms(10) == 500
    for name, value in [
        ("LULL_READ_RECEIPTS", "sometimes"),
        ("LULL_TYPING", "maybe"),
        ("LULL_REPLY_DELAY_MS", "-1"),
        ("LULL_TYPING_REFRESH_MS", "60000"),
        ("LULL_SEND_RATE_PER_USER", "fast"),
    ]:
        with pytest.raises(ConfigError, match=name):
            SenderSettings.from_env({**sender_env, name: value})


async def test_presence_after_a_grace_only_for_bots_slower_than_it(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    quick = await make_sender(LULL_PRESENCE_AFTER_MS="20000")
    quick.deliverer.bot = AfterPresence(graph, 0, [{"text": "quick"}])
    await emit(redis, quick.keys, "u1", 1, "hello")
    await settle(quick)
    assert graph.presence_calls == 0 and len(graph.sent) == 1

    slow = await make_sender(LULL_PRESENCE_AFTER_MS="30", LULL_NAMESPACE="grace2")
    slow.deliverer.bot = AfterPresence(graph, 2, [{"text": "slow"}])
    await emit(redis, slow.keys, "u2", 1, "hello")
    await settle(slow)
    assert actions(graph) == ["mark_seen", "typing_on"]


async def test_an_idle_account_limit_spaces_presence_calls_instead_of_dropping_them(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    # 80/s allows one call per 12.6 ms: typing_on right after mark_seen takes the next slot.
    sender = await make_sender(LULL_RATE_GLOBAL="80/s")
    sender.deliverer.bot = AfterPresence(graph, 2, [{"text": "hi"}])
    await emit(redis, sender.keys, "u1", 1, "hello")
    await settle(sender)
    assert actions(graph) == ["mark_seen", "typing_on"]
    assert len(graph.sent) == 1
