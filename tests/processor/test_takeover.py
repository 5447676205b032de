"""Who is a human: echoes, smb_message_echoes, handover and standby, end to end through the
processor, and the stamp a batch closed during a pause carries."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis

from lull.common.consumer import RetryLater
from lull.common.events import ECHO, Turn
from lull.common.store.keys import Keys
from lull.common.store.sent import SentMessage
from lull.processor.app import Processor
from tests.conftest import FIXTURES
from tests.poll import until
from tests.processor.test_processor import MakeProcessor, ingest, make_processor
from tests.processor.windowing import batches, redis_now_ms

__all__ = ["make_processor"]  # the fixture, used by name

PAGE, PSID = "106000000000001", "7000000000000001"
MESSENGER = f"messenger:{PAGE}:{PSID}"
WHATSAPP = "whatsapp:106540352242922:16315551234"
LULL_APP, INBOX = "1517776481860111", "263902037430900"
WAIT_S = 5.0


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def user_text(user: str, mid: str, text: str, t_ms: int) -> bytes:
    """A Messenger user's text to the fixtures' Page."""
    item = {
        "sender": {"id": user},
        "recipient": {"id": PAGE},
        "timestamp": t_ms,
        "message": {"mid": mid, "text": text},
    }
    return orjson.dumps({"object": "page", "entry": [{"id": PAGE, "messaging": [item]}]})


def echo(mid: str, text: str, t_ms: int, app_id: int | None = None) -> bytes:
    """An echo of a message the Page sent to the fixtures' user (Meta's message_echoes)."""
    message: dict[str, Any] = {"is_echo": True, "mid": mid, "text": text}
    if app_id is not None:
        message["app_id"] = app_id
    item = {
        "sender": {"id": PAGE},
        "recipient": {"id": PSID},
        "timestamp": t_ms,
        "message": message,
    }
    return orjson.dumps({"object": "page", "entry": [{"id": PAGE, "messaging": [item]}]})


async def pause_of(redis: aioredis.Redis, keys: Keys, conversation: str) -> dict[str, str]:
    raw = cast(dict[bytes, bytes], await redis.hgetall(keys.pause(conversation)))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def history(redis: aioredis.Redis, keys: Keys, conversation: str) -> list[dict[str, Any]]:
    return [orjson.loads(item) for item in await redis.lrange(keys.history(conversation), 0, -1)]


def turns(processor: Processor, platform: str, outcome: str) -> float:
    value = processor.registry.get_sample_value(
        "lull_processor_turns_total", {"platform": platform, "outcome": outcome}
    )
    return value or 0.0


async def test_an_echo_with_lulls_app_id_does_not_pause(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(LULL_META_APP_ID=LULL_APP)
    await ingest(redis, processor.keys, fixture("messenger/echo"))
    await processor.drain()
    assert await redis.exists(processor.keys.pause(MESSENGER)) == 0
    assert await history(redis, processor.keys, MESSENGER) == []
    assert turns(processor, "messenger", "own_echo") == 1


async def test_an_echo_of_a_mid_lull_remembers_does_not_pause(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    # Without LULL_META_APP_ID: the sender remembered the mid the Send API answered.
    processor = make_processor()
    keys = processor.keys
    await redis.set(keys.sent_message("m_echo_1"), SentMessage(MESSENGER, 1).encode())
    await ingest(redis, keys, fixture("messenger/echo"))
    await processor.drain()
    assert await redis.exists(keys.pause(MESSENGER)) == 0
    assert turns(processor, "messenger", "own_echo") == 1


@pytest.mark.parametrize("app_id", ["", LULL_APP])
async def test_a_page_inbox_echo_pauses_and_joins_the_history(
    make_processor: MakeProcessor, redis: aioredis.Redis, app_id: str
) -> None:
    processor = make_processor(LULL_META_APP_ID=app_id)
    keys = processor.keys
    for _ in range(2):  # Meta redelivers: recorded once
        await ingest(redis, keys, fixture("messenger/echo_page_inbox"))
    await processor.drain()
    pause = await pause_of(redis, keys, MESSENGER)
    assert (pause["reason"], pause["by"], pause["hold"]) == ("human_echo", INBOX, "0")
    [item] = await history(redis, keys, MESSENGER)
    assert item == {
        "role": "human",
        "mid": "m_echo_page_inbox_1",
        "text": "Hi, this is Ana from support. Let me check your order.",
        "time": 1763800020000,
        "app_id": INBOX,
    }
    started = processor.registry.get_sample_value(
        "lull_processor_pauses_started_total", {"reason": "human_echo"}
    )
    assert started == 1


async def test_an_echo_of_a_crms_app_pauses(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(LULL_META_APP_ID=LULL_APP)
    await ingest(redis, processor.keys, echo("m_crm_1", "hello from the CRM", 1, app_id=42))
    await processor.drain()
    pause = await pause_of(redis, processor.keys, MESSENGER)
    assert (pause["reason"], pause["by"]) == ("human_echo", "42")


async def test_a_wrong_meta_app_id_does_not_pause_after_lulls_own_reply(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    # The echo names lull's real app; the setting names another: the remembered mid wins.
    processor = make_processor(LULL_META_APP_ID="999")
    keys = processor.keys
    await redis.set(keys.sent_message("m_echo_1"), SentMessage(MESSENGER, 1).encode())
    await ingest(redis, keys, fixture("messenger/echo"))
    await processor.drain()
    assert await redis.exists(keys.pause(MESSENGER)) == 0
    assert turns(processor, "messenger", "own_echo") == 1


async def test_an_echo_first_waits_for_the_sender_to_remember_its_mid(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    # Meta's echo of lull's send comes before the Send API's answer was recorded: the
    # sender's in-flight mark makes the processor look again instead of deciding.
    processor = make_processor()
    keys = processor.keys
    await redis.set(keys.send_inflight(MESSENGER), 1, px=60_000)
    await ingest(redis, keys, echo("m_lull_1", "lull's reply", 1))
    draining = asyncio.create_task(processor.drain())
    await until(lambda: turns(processor, "messenger", "echo_early") >= 2, "echo looked at", WAIT_S)
    assert await redis.exists(keys.pause(MESSENGER)) == 0
    # The Send API answers; the sender remembers the mid and clears its mark.
    await redis.set(keys.sent_message("m_lull_1"), SentMessage(MESSENGER, 1).encode())
    await redis.delete(keys.send_inflight(MESSENGER))
    await asyncio.wait_for(draining, WAIT_S)
    assert await redis.exists(keys.pause(MESSENGER)) == 0
    assert turns(processor, "messenger", "own_echo") == 1
    assert (await redis.xpending(keys.inbound(), "processor"))["pending"] == 0


async def test_an_echo_first_of_a_human_pauses_once_the_send_is_over(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor()
    keys = processor.keys
    await processor.start()
    turn = Turn("messenger", PAGE, PSID, ECHO, 1, mid="m_human_1", text="agent here")
    await redis.set(keys.send_inflight(MESSENGER), 1, px=60_000)
    assert isinstance(await processor.human_turns.apply([turn]), RetryLater)
    assert await redis.exists(keys.pause(MESSENGER)) == 0
    # lull's send ended with another mid: this one is nobody's but a human's.
    await redis.delete(keys.send_inflight(MESSENGER))
    assert await processor.human_turns.apply([turn]) is None
    assert (await pause_of(redis, keys, MESSENGER))["reason"] == "human_echo"


async def test_an_smb_message_echo_pauses_the_whatsapp_conversation(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor()
    keys = processor.keys
    await ingest(redis, keys, fixture("whatsapp/smb_message_echoes"))
    await processor.drain()
    pause = await pause_of(redis, keys, WHATSAPP)
    assert (pause["reason"], pause["by"]) == ("smb_echo", "whatsapp_business_app")
    [item] = await history(redis, keys, WHATSAPP)
    assert (item["role"], item["mid"]) == ("human", "wamid.smb_message_echoes_1")
    # The user's next message is in the same conversation, so its batch is stamped.
    await ingest(redis, keys, fixture("whatsapp/text"))
    await processor.drain()
    [batch] = await batches(redis, keys)
    assert (batch["conversation"], batch["paused"]) == (WHATSAPP, True)


async def test_a_taken_thread_is_held_until_it_is_passed_back(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(LULL_META_APP_ID=LULL_APP)
    keys = processor.keys
    await ingest(redis, keys, fixture("messenger/take_thread_control"))
    await processor.drain()
    pause = await pause_of(redis, keys, MESSENGER)
    assert (pause["reason"], pause["by"], pause["hold"]) == ("thread_taken", INBOX, "1")
    # A request changes no owner.
    await ingest(redis, keys, fixture("messenger/request_thread_control"))
    await processor.drain()
    assert await redis.exists(keys.pause(MESSENGER)) == 1
    await ingest(redis, keys, fixture("messenger/pass_thread_control"))
    await processor.drain()
    assert await redis.exists(keys.pause(MESSENGER)) == 0
    assert turns(processor, "messenger", "thread_released") == 1


async def test_a_thread_passed_to_another_app_is_held(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(LULL_META_APP_ID=LULL_APP)
    doc = orjson.loads(fixture("messenger/pass_thread_control"))
    control = doc["entry"][0]["messaging"][0]["pass_thread_control"]
    control.update(previous_owner_app_id=LULL_APP, new_owner_app_id=INBOX)
    await ingest(redis, processor.keys, orjson.dumps(doc))
    await processor.drain()
    pause = await pause_of(redis, processor.keys, MESSENGER)
    assert (pause["reason"], pause["by"], pause["hold"]) == ("thread_passed", INBOX, "1")


async def test_a_standby_message_holds_and_is_windowed_stamped(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor()
    keys = processor.keys
    await ingest(redis, keys, fixture("messenger/standby"))
    await processor.drain()
    pause = await pause_of(redis, keys, MESSENGER)
    assert (pause["reason"], pause["hold"]) == ("standby", "1")
    [batch] = await batches(redis, keys)
    assert batch["text"] == "is anyone there?" and batch["paused"] is True
    stamped = processor.registry.get_sample_value("lull_processor_batches_paused_total")
    assert stamped == 1


async def test_another_apps_echo_in_standby_is_a_human_turn_in_a_held_thread(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(LULL_META_APP_ID=LULL_APP)
    keys = processor.keys
    await ingest(redis, keys, fixture("messenger/standby_echo"))
    await processor.drain()
    pause = await pause_of(redis, keys, MESSENGER)
    assert pause["hold"] == "1" and pause["human_last_ms"] != "0"
    [item] = await history(redis, keys, MESSENGER)
    assert (item["role"], item["text"]) == ("human", "I'm here, how can I help?")


async def test_a_pause_ends_after_the_quiet_time_and_batches_are_no_longer_stamped(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(LULL_HUMAN_PAUSE_MS="50")
    keys = processor.keys
    now = await redis_now_ms(redis)
    await ingest(redis, keys, echo("m_agent_1", "I'll check", now, app_id=int(INBOX)))
    await ingest(redis, keys, user_text(PSID, "m_user_1", "thanks", now + 1))
    await processor.drain()
    until_ms = int((await pause_of(redis, keys, MESSENGER))["until_ms"])
    # The key expires at until_ms on the Redis clock: poll that clock, no local sleep guess.
    for _ in range(10_000):
        if await redis_now_ms(redis) > until_ms and not await redis.exists(keys.pause(MESSENGER)):
            break
    assert await redis.exists(keys.pause(MESSENGER)) == 0
    await ingest(redis, keys, user_text(PSID, "m_user_2", "hello bot?", await redis_now_ms(redis)))
    await processor.drain()
    first, second = await batches(redis, keys)
    assert (first["text"], first["paused"]) == ("thanks", True)
    assert second["text"] == "hello bot?" and "paused" not in second


async def test_a_pause_ends_at_the_cap_however_often_the_human_writes(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor(LULL_HUMAN_PAUSE_MS="60000", LULL_HUMAN_PAUSE_MAX_MS="80")
    keys = processor.keys
    now = await redis_now_ms(redis)
    await ingest(redis, keys, echo("m_agent_1", "one", now, app_id=int(INBOX)))
    await processor.drain()
    first = await pause_of(redis, keys, MESSENGER)
    assert int(first["until_ms"]) == int(first["since_ms"]) + 80
    await ingest(redis, keys, echo("m_agent_2", "two", now + 1, app_id=int(INBOX)))
    await processor.drain()
    for _ in range(10_000):
        if await redis_now_ms(redis) > int(first["until_ms"]):
            break
    assert await redis.exists(keys.pause(MESSENGER)) == 0
    # Both of the human's messages are in the history, in order.
    assert [h["text"] for h in await history(redis, keys, MESSENGER)] == ["one", "two"]
