"""LULL_READ_RECEIPTS=arrival: the processor logs each new message as it is windowed, and
the sender's presence group marks it read before the window closes."""

from __future__ import annotations

import time

import orjson
import redis.asyncio as aioredis

from lull.common.events import Event
from lull.dev.fake_graph import FakeGraph
from lull.processor.app import Processor
from lull.processor.arrivals import ArrivalLog
from lull.processor.settings import ProcessorSettings
from tests.sender.conftest import MakeSender, emit
from tests.sender.test_presence import AfterPresence, actions, settle

WA_USER = "15550000002"


def messenger_body(user: str, mids: list[str], t_ms: int) -> bytes:
    """A Messenger webhook body, one text message per mid, for page p1."""
    items = [
        {
            "sender": {"id": user},
            "recipient": {"id": "p1"},
            "timestamp": t_ms + n,
            "message": {"mid": mid, "text": f"text of {mid}"},
        }
        for n, mid in enumerate(mids)
    ]
    return orjson.dumps({"object": "page", "entry": [{"id": "p1", "messaging": items}]})


async def test_messages_are_read_as_they_arrive_before_the_window_closes(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    sender_env: dict[str, str],
) -> None:
    env = {
        **sender_env,
        "LULL_WINDOW_MS": "60000",
        "LULL_MAX_WAIT_MS": "60000",
        "LULL_READ_RECEIPTS": "arrival",
    }
    processor = Processor(redis, ProcessorSettings.from_env(env))
    sender = await make_sender(LULL_READ_RECEIPTS="arrival")
    now_ms = int(time.time() * 1000)
    fields = {"body": messenger_body("u1", ["m1", "m2"], now_ms), "received_at": now_ms}
    await redis.xadd(processor.keys.inbound(), fields)  # type: ignore[arg-type]
    # A redelivered webhook: its messages are duplicates, not logged again.
    await redis.xadd(processor.keys.inbound(), fields)  # type: ignore[arg-type]
    await processor.start()
    await processor.consumer.run_until_idle()
    assert await redis.xlen(processor.keys.arrivals()) == 2
    # WhatsApp's arrivals, as the processor logs them.
    wa = [
        Event("whatsapp", "wa1", WA_USER, f"wamid.{n}", now_ms, "text", text="hi") for n in (1, 2)
    ]
    await ArrivalLog(redis, processor.keys).record(wa)

    await sender.drain()
    await sender.deliverer.presence.idle()
    payloads = [call["payload"] for call in graph.presence]
    # One call per conversation and read: marking the last message read marks the others.
    assert payloads == [
        {"recipient": {"id": "u1"}, "sender_action": "mark_seen"},
        {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.2"},
    ]
    # The windows are still open: nothing was answered yet.
    assert graph.sent == []
    assert await redis.xlen(processor.keys.outbound(0)) == 0


async def test_without_arrival_the_processor_logs_nothing(
    redis: aioredis.Redis, sender_env: dict[str, str]
) -> None:
    processor = Processor(redis, ProcessorSettings.from_env(sender_env))
    now_ms = int(time.time() * 1000)
    fields = {"body": messenger_body("u1", ["m1"], now_ms), "received_at": now_ms}
    await redis.xadd(processor.keys.inbound(), fields)  # type: ignore[arg-type]
    await processor.start()
    await processor.consumer.run_until_idle()
    assert await redis.exists(processor.keys.arrivals()) == 0


async def test_with_arrival_the_batch_shows_typing_only(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph
) -> None:
    sender = await make_sender(LULL_READ_RECEIPTS="arrival")
    sender.deliverer.bot = AfterPresence(graph, 1, [{"text": "hi"}])
    await emit(redis, sender.keys, "u1", 1, "hello")
    await settle(sender)
    assert actions(graph) == ["typing_on"]
