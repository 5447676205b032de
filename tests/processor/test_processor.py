"""The processor end to end: raw entries on the inbound stream in, batches out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import orjson
import pytest
import redis.asyncio as aioredis
from prometheus_client import generate_latest

from lull.common.redis_conn import connect
from lull.common.store.keys import Keys
from lull.dev.embedded_redis import EmbeddedRedis
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.conftest import FIXTURES
from tests.processor.windowing import batches, life_seqs, message, redis_now_ms

MakeProcessor = Callable[..., Processor]


@pytest.fixture
def make_processor(redis: aioredis.Redis, base_env: dict[str, str]) -> MakeProcessor:
    def make(**overrides: str) -> Processor:
        env = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000", **base_env, **overrides}
        return Processor(redis, ProcessorSettings.from_env(env))

    return make


async def ingest(redis: aioredis.Redis, keys: Keys, body: bytes) -> None:
    """What ingest stores for one accepted POST."""
    fields = {"body": body, "received_at": int(time.time() * 1000), "sig": "ok"}
    await redis.xadd(keys.inbound(), fields)  # type: ignore[arg-type]


def messenger_body(user: str, mids: list[str], t_ms: int) -> bytes:
    items = [
        {
            "sender": {"id": user},
            "recipient": {"id": "106000000000001"},
            "timestamp": t_ms + n,
            "message": {"mid": mid, "text": f"text of {mid}"},
        }
        for n, mid in enumerate(mids)
    ]
    return orjson.dumps(
        {"object": "page", "entry": [{"id": "106000000000001", "messaging": items}]}
    )


async def test_burst_of_three_posts_is_one_batch(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor()
    now = await redis_now_ms(redis)
    for n, text in enumerate(["hi", "I have", "a problem with my order"]):
        body = orjson.dumps(
            {
                "object": "page",
                "entry": [{"id": "1", "time": now, "messaging": [{
                    "sender": {"id": "u1"}, "recipient": {"id": "p1"}, "timestamp": now + n,
                    "message": {"mid": f"m{n}", "text": text},
                }]}],
            }
        )  # fmt: skip
        await ingest(redis, processor.keys, body)
    assert await processor.drain() == 1
    [batch] = await batches(redis, processor.keys)
    assert batch["text"] == "hi\nI have\na problem with my order"
    # Everything was acknowledged: nothing left pending for the group.
    pending = await redis.xpending(processor.keys.inbound(), "processor")
    assert pending["pending"] == 0


async def test_meta_retry_of_the_same_body_is_counted_once(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor()
    body = messenger_body("u1", ["a", "b"], await redis_now_ms(redis))
    for _ in range(3):
        await ingest(redis, processor.keys, body)
    assert await processor.drain() == 1
    [batch] = await batches(redis, processor.keys)
    assert [m["mid"] for m in batch["messages"]] == ["a", "b"]


async def test_every_fixture_body_is_processed_without_dead_letters(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    # Fixture timestamps are old: the clamp treats them as arriving now.
    processor = make_processor()
    for path in sorted(FIXTURES.glob("*/*.json")):
        await ingest(redis, processor.keys, path.read_bytes())
    emitted = await processor.drain()
    assert await redis.xlen(processor.keys.dead()) == 0
    found = await batches(redis, processor.keys)
    assert len(found) == emitted >= 3
    # The fixtures share a few users, so their messages gather in a few large batches.
    assert sum(len(b["messages"]) for b in found) > 40
    assert {b["platform"] for b in found} == {"messenger", "instagram", "whatsapp"}
    text = generate_latest(processor.registry).decode()
    assert 'lull_processor_ignored_total{kind="status",platform="whatsapp"}' in text
    # Without LULL_META_APP_ID and with no remembered mids, every echo is a human's turn.
    assert 'lull_processor_turns_total{outcome="human_echo",platform="messenger"}' in text
    assert 'lull_processor_turns_total{outcome="smb_echo",platform="whatsapp"}' in text


async def test_poison_entry_goes_to_dead_letters_and_the_group_flows(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor()
    await redis.xadd(processor.keys.inbound(), {"body": b"\xff not json", "received_at": 1})
    await ingest(redis, processor.keys, messenger_body("u1", ["ok"], await redis_now_ms(redis)))
    assert await processor.drain() == 1
    dead = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(processor.keys.dead()))
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"body"] == b"\xff not json"
    assert b"malformed body" in fields[b"_reason"]
    assert fields[b"_group"] == b"processor"


async def test_three_closers_emit_each_of_1000_windows_once(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processors = [make_processor(LULL_SHARDS="2") for _ in range(3)]
    store = processors[0].store
    await store.load_scripts()
    now = await redis_now_ms(redis)
    events = [
        (message(f"m{u}-{n}", now + n, user=f"u{u}"), now) for u in range(1000) for n in (0, 1)
    ]
    for start in range(0, len(events), 500):
        await store.apply(events[start : start + 500])
    emitted = await asyncio.gather(*(p.closer.drain() for p in processors))
    assert sum(emitted) == 1000
    found = await batches(redis, processors[0].keys)
    assert len(found) == 1000
    assert len({b["conversation"] for b in found}) == 1000
    assert all(len(b["messages"]) == 2 for b in found)
    assert set(await life_seqs(redis, processors[0].keys, found)) == {1}


async def test_two_shards_behave_as_one(
    make_processor: MakeProcessor, redis: aioredis.Redis, namespace: str
) -> None:
    results: list[list[tuple[str, str]]] = []
    for shards in ("1", "2"):
        processor = make_processor(LULL_SHARDS=shards, LULL_NAMESPACE=f"{namespace}s{shards}")
        now = await redis_now_ms(redis)
        for user in ("a", "b", "c", "d"):
            await ingest(redis, processor.keys, messenger_body(user, [f"{user}1", f"{user}2"], now))
        await processor.drain()
        found = await batches(redis, processor.keys)
        results.append(sorted((b["user_id"], b["text"]) for b in found))
    assert results[0] == results[1]
    assert len(results[0]) == 4


async def test_late_message_opens_new_window(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor()
    now = await redis_now_ms(redis)
    await ingest(redis, processor.keys, messenger_body("u1", ["a"], now))
    await processor.drain()
    await ingest(redis, processor.keys, messenger_body("u1", ["b"], now))
    await processor.drain()
    found = await batches(redis, processor.keys)
    assert [len(b["messages"]) for b in found] == [1, 1]
    assert await life_seqs(redis, processor.keys, found) == [1, 2]


async def test_account_id_with_a_colon_is_skipped_not_misattributed(
    make_processor: MakeProcessor, redis: aioredis.Redis
) -> None:
    processor = make_processor()
    body = messenger_body("u1", ["a"], await redis_now_ms(redis)).replace(
        b'"recipient":{"id":"106000000000001"}', b'"recipient":{"id":"10:6"}'
    )
    await ingest(redis, processor.keys, body)
    assert await processor.drain() == 0
    text = generate_latest(processor.registry).decode()
    assert 'lull_processor_ignored_total{kind="malformed",platform="messenger"} 1.0' in text


async def test_closer_survives_a_redis_restart(base_env: dict[str, str], tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, appendonly=True).start()
    client = connect(server.url, timeout_s=1)
    env = {**base_env, "LULL_REDIS_URL": server.url, "LULL_WINDOW_MS": "30"}
    processor = Processor(client, ProcessorSettings.from_env(env))
    await processor.start()
    stop = asyncio.Event()
    closer = asyncio.create_task(processor.closer.run(stop))
    try:
        server.stop()
        port = server.port
        # The closer meets a dead Redis and backs off instead of ending.
        await asyncio.sleep(0.3)  # let it fail a few times (its own backoff timer)
        assert not closer.done()
        server = EmbeddedRedis(tmp_path, appendonly=True, port=port).start()
        now = await redis_now_ms(client)
        await processor.store.load_scripts()
        await processor.store.apply([(message("after", now), now)])
        for _ in range(100):
            if await batches(client, processor.keys):
                break
            await asyncio.sleep(0.05)  # the running closer's own wake-up, bounded
        assert [b["text"] for b in await batches(client, processor.keys)] == ["after"]
    finally:
        stop.set()
        await closer
        await client.aclose()
        server.stop()


@pytest.mark.parametrize(
    "fixture",
    [
        "messenger/postback",
        "messenger/quick_reply",
        "instagram/postback",
        "instagram/quick_reply",
        "whatsapp/interactive_button_reply",
        "whatsapp/interactive_list_reply",
        "whatsapp/button",
    ],
)
async def test_a_button_or_list_tap_closes_its_window_at_once_on_every_platform(
    make_processor: MakeProcessor, redis: aioredis.Redis, fixture: str
) -> None:
    # The default LULL_FLUSH_ON; a minute-long gap, so only the flush can close it now.
    processor = make_processor(LULL_WINDOW_MS="60000", LULL_MAX_WAIT_MS="60000")
    await ingest(redis, processor.keys, (FIXTURES / f"{fixture}.json").read_bytes())
    await processor.start()
    await processor.consumer.run_until_idle()
    emitted, _, _ = await processor.closer.close_due()
    assert emitted == 1
    [batch] = await batches(redis, processor.keys)
    assert batch["close_reason"] == "flush"
