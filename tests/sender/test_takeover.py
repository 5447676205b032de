"""What a pause does to deliveries: no bot call, history kept, the stamp survives the pause's
end and a dead replay, and the same-moment rule between a human and a batch on its way."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis.asyncio as aioredis

from lull.common.env import Env
from lull.common.store.keys import Keys
from lull.common.store.legacy import LegacyKeys
from lull.common.store.pauses import PauseAction, PauseSettings, PauseStore
from lull.common.store.sent import SentMessage
from lull.dev.fake_graph import FakeGraph
from lull.ops.dead import DeadLetters
from lull.sender.app import Sender
from lull.sender.bot import Reached
from lull.sender.graph.client import GraphClient, GraphRequest
from tests.ops.test_dead import idle_past
from tests.sender.conftest import MakeSender, emit, sent_texts

CONVERSATION = "messenger:p1:u1"
WAIT_S = 5.0


class RecordingBot:
    """Answers every batch with its text; records what it was asked. With a gate, it holds
    each batch until the test opens it (the bot "thinks" meanwhile)."""

    name = "recording"
    forward_only = False

    def __init__(self, *, gated: bool = False, replies: int = 1) -> None:
        self.received: list[dict[str, Any]] = []
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.replies = replies
        if not gated:
            self.gate.set()

    async def __call__(
        self, batch: dict[str, Any], reached: Reached | None = None
    ) -> list[dict[str, Any]]:
        """The batch's text, `replies` times, once the gate is open."""
        if reached is not None:
            reached()  # on its way at once, as a python: handler
        self.received.append(batch)
        self.entered.set()
        await self.gate.wait()
        return [{"text": f"{batch['text']} ({n})"} for n in range(1, self.replies + 1)]

    async def close(self) -> None:
        """Nothing to release."""


class PausingGraph:
    """The real Graph client, which pauses the conversation right after its first send was
    accepted: a human's echo recorded just after lull's check before the first send."""

    def __init__(self, inner: GraphClient, pauses: PauseStore) -> None:
        self.inner = inner
        self.pauses = pauses
        self.posts = 0

    async def post(self, request: GraphRequest) -> str:
        """Send, then pause after the first one."""
        message_id = await self.inner.post(request)
        self.posts += 1
        if self.posts == 1:
            await self.pauses.apply(CONVERSATION, PauseAction.HUMAN, reason="human_echo")
        return message_id


def pauses(redis: aioredis.Redis, keys: Keys) -> PauseStore:
    return PauseStore(redis, keys, PauseSettings.from_env(Env({})))


async def with_bot(make_sender: MakeSender, bot: RecordingBot) -> Sender:
    sender = await make_sender()
    sender.deliverer.bot = bot
    return sender


def outcome(sender: Sender, name: str) -> float:
    value = sender.registry.get_sample_value("lull_sender_deliveries_total", {"outcome": name})
    return value or 0.0


async def history(redis: aioredis.Redis, keys: Keys) -> list[tuple[str, str]]:
    items = [orjson.loads(i) for i in await redis.lrange(keys.history(CONVERSATION), 0, -1)]
    return [(item["role"], item["text"]) for item in items]


async def emit_paused(redis: aioredis.Redis, keys: Keys, seq: int, text: str) -> None:
    """A batch as window_close.lua stamps it when the conversation was paused at close."""
    await emit(redis, keys, "u1", seq, text, paused=True)


async def test_a_paused_conversation_is_finished_paused_without_a_bot_call(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    bot = RecordingBot()
    sender = await with_bot(make_sender, bot)
    keys = sender.keys
    store = pauses(redis, keys)
    await store.apply(CONVERSATION, PauseAction.HUMAN, reason="human_echo", by="263902037430900")
    await emit(redis, keys, "u1", 1, "is anyone there?")
    await sender.drain()
    assert bot.received == [] and graph.sent == []
    assert outcome(sender, "paused") == 1
    # Finished like any batch: the next one does not wait for it, the user's words are kept.
    assert await redis.hget(keys.conversation_state(CONVERSATION), "delivered") == b"1"
    assert await history(redis, keys) == [("user", "is anyone there?")]

    await store.apply(CONVERSATION, PauseAction.RESUME)
    await emit(redis, keys, "u1", 2, "hello?")
    await sender.drain()
    assert [b["text"] for b in bot.received] == ["hello?"]
    assert sent_texts(graph) == [("u1", "hello? (1)")]


async def test_a_stamped_batch_is_never_answered_even_after_the_pause_ended(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    bot = RecordingBot()
    sender = await with_bot(make_sender, bot)
    keys = sender.keys
    # No pause key: the human left; the batch was closed while they were there.
    await emit_paused(redis, keys, 1, "thanks Ana!")
    await sender.drain()
    assert bot.received == [] and graph.sent == []
    assert outcome(sender, "paused") == 1
    assert await history(redis, keys) == [("user", "thanks Ana!")]


async def test_a_stamped_batch_stays_unanswered_after_a_dead_replay(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    bot = RecordingBot()
    sender = await make_sender(LULL_MAX_DELIVERIES="1", LULL_CLAIM_IDLE_MS="10")
    sender.deliverer.bot = bot
    keys = sender.keys
    stream = keys.outbound(keys.shard_of(CONVERSATION))
    await sender.drain()  # creates the group
    await emit_paused(redis, keys, 1, "closed while a human had it")
    # A replica reads it and dies; the next claim finds it past LULL_MAX_DELIVERIES.
    await redis.xreadgroup("sender", "crashed", {stream: ">"}, count=10)
    await idle_past(redis, stream, "sender", 30)
    await sender.drain()
    letters = DeadLetters(redis, keys)
    [letter] = await letters.first(10)
    assert b"max_deliveries" in letter.fields[b"_reason"]
    assert await letters.marked(letter)

    replayed = await letters.replay([letter])
    assert len(replayed.done) == 1
    await sender.drain()
    assert bot.received == [] and graph.sent == []
    assert outcome(sender, "paused") == 1
    assert await redis.hlen(LegacyKeys.of(keys, 0).dead_batches) == 0


async def test_a_pause_recorded_while_the_bot_thinks_wins(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    # The same-moment rule: the pause is asked, forced, right before the first send.
    bot = RecordingBot(gated=True)
    sender = await with_bot(make_sender, bot)
    keys = sender.keys
    await emit(redis, keys, "u1", 1, "where is my order?")
    task = asyncio.create_task(sender.drain())
    await asyncio.wait_for(bot.entered.wait(), WAIT_S)
    await pauses(redis, keys).apply(CONVERSATION, PauseAction.HUMAN, reason="human_echo")
    bot.gate.set()
    await asyncio.wait_for(task, WAIT_S)
    assert len(bot.received) == 1
    assert graph.sent == []  # the bot's reply was dropped
    assert outcome(sender, "paused") == 1 and outcome(sender, "sent") == 0
    assert await history(redis, keys) == [("user", "where is my order?")]


async def test_a_pause_recorded_after_the_first_send_loses_to_that_batch(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    bot = RecordingBot(replies=2)
    sender = await with_bot(make_sender, bot)
    keys = sender.keys
    sender.deliverer.graph = PausingGraph(sender.deliverer.graph, pauses(redis, keys))  # type: ignore[assignment]
    await emit(redis, keys, "u1", 1, "two answers")
    await emit(redis, keys, "u1", 2, "and this one?")
    await sender.drain()
    # The batch whose first reply was accepted is not cut in half; the next one is paused.
    assert sent_texts(graph) == [("u1", "two answers (1)"), ("u1", "two answers (2)")]
    assert [b["text"] for b in bot.received] == ["two answers"]
    assert outcome(sender, "sent") == 1 and outcome(sender, "paused") == 1


async def test_a_messenger_send_remembers_its_mid_and_clears_the_in_flight_mark(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender()
    keys = sender.keys
    await emit(redis, keys, "u1", 1, "hi")
    await sender.drain()
    [sent] = graph.sent
    remembered = await redis.get(keys.sent_message(sent["message_id"]))
    assert isinstance(remembered, bytes)
    assert SentMessage.decode(remembered) == SentMessage(CONVERSATION, 1)
    assert await redis.exists(keys.send_inflight(CONVERSATION)) == 0
