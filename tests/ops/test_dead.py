"""`lull dead` on dead letters written by the real code paths (processor and sender)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from prometheus_client import generate_latest

from lull.common.consumer import Entry, dead_letter_fields
from lull.common.store.keys import Keys
from lull.dev.fake_graph import FakeGraph
from lull.ops.dead import META_FIELDS
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.ops import lull_dead as lull_dead_fixture
from tests.ops.lull_dead import RunDead
from tests.sender import conftest as sender_fixtures
from tests.sender.conftest import MakeSender, dead_marks, emit, sent_texts
from tests.sender.fake_bot import FakeBot

# The sender tests' fixtures: the fake Graph API and senders built on the test Redis.
graph_server = sender_fixtures.graph_server
graph = sender_fixtures.graph
sender_env = sender_fixtures.sender_env
make_sender = sender_fixtures.make_sender
lull_dead = lull_dead_fixture.lull_dead

Rows = list[tuple[bytes, dict[bytes, bytes]]]
WAIT_S = 5.0


def make_processor(redis: aioredis.Redis, base_env: dict[str, str], **env: str) -> Processor:
    settings = ProcessorSettings.from_env(
        {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000", **base_env, **env}
    )
    return Processor(redis, settings)


async def ingest(redis: aioredis.Redis, keys: Keys, body: bytes) -> None:
    """What ingest stores for one accepted POST."""
    fields = {"body": body, "received_at": int(time.time() * 1000), "sig": "ok"}
    await redis.xadd(keys.inbound(), fields)  # type: ignore[arg-type]


def messenger_body(user: str, mid: str, text: str) -> bytes:
    item = {
        "sender": {"id": user},
        "recipient": {"id": "106000000000001"},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": mid, "text": text},
    }
    return orjson.dumps(
        {"object": "page", "entry": [{"id": "106000000000001", "messaging": [item]}]}
    )


async def idle_past(redis: aioredis.Redis, stream: str, group: str, idle_ms: int) -> None:
    """Wait (bounded) until every pending entry has been idle idle_ms on Redis's clock."""
    deadline = time.monotonic() + WAIT_S
    while True:
        rows = cast(
            list[dict[str, Any]],
            await redis.xpending_range(stream, group, min="-", max="+", count=100),
        )
        if rows and all(row["time_since_delivered"] >= idle_ms for row in rows):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"entries not idle {idle_ms} ms within {WAIT_S} s: {rows}")
        await asyncio.sleep(0.005)


async def letter_ids(redis: aioredis.Redis, keys: Keys) -> list[str]:
    return [entry_id.decode() for entry_id, _ in cast(Rows, await redis.xrange(keys.dead()))]


def test_meta_fields_are_the_ones_dead_letter_fields_adds() -> None:
    entry = Entry("s", "1-0", {b"body": b"{}"}, 1)
    fields = dead_letter_fields(entry, group="g", consumer="c", reason="r", dead_at_ms=1)
    assert set(fields) - set(entry.fields) == set(META_FIELDS)


async def test_a_processor_letter_is_listed_shown_and_replayed(
    redis: aioredis.Redis, base_env: dict[str, str], lull_dead: RunDead
) -> None:
    processor = make_processor(redis, base_env)
    keys = processor.keys
    await ingest(redis, keys, b'{"object": "page", "entry": [ broken')
    assert await processor.drain() == 0
    [letter_id] = await letter_ids(redis, keys)

    code, out, _ = await lull_dead("list")
    assert code == 0
    [header, row, total] = out.splitlines()
    assert header.split()[:3] == ["ID", "DEAD", "AT"]
    assert row.startswith(letter_id)
    assert keys.inbound() in row and "processor" in row and "malformed body" in row
    assert total == "1 of 1 dead letter(s)"

    code, out, _ = await lull_dead("list", "--json")
    assert code == 0
    [summary] = orjson.loads(out)
    assert summary["id"] == letter_id
    assert summary["source"] == keys.inbound()
    assert summary["group"] == "processor"
    assert summary["deliveries"] == 1
    assert summary["reason"].startswith("malformed body")
    assert summary["dead_at"].endswith("Z") and "T" in summary["dead_at"]
    assert summary["preview"].startswith('{"object": "page"')

    code, out, _ = await lull_dead("show", letter_id)
    assert code == 0
    assert f"id:          {letter_id}" in out
    assert "reason:      malformed body" in out
    assert '  {"object": "page", "entry": [ broken' in out  # not JSON: shown as it is
    assert (await lull_dead("show", "1-1"))[:3:2] == (1, "lull dead: no dead letter 1-1\n")
    assert (await lull_dead("show", "not-an-id"))[0] == 2
    assert (await lull_dead("list", "--limit", "0"))[0] == 2
    assert (await lull_dead("replay"))[0] == 2
    assert (await lull_dead("list", LULL_SHARDS="0"))[2].startswith("lull dead: bad configuration")

    code, out, _ = await lull_dead("replay", letter_id)
    assert code == 0
    assert f"replayed {letter_id} -> {keys.inbound()}" in out
    assert await redis.xlen(keys.dead()) == 0
    [(_, fields)] = cast(Rows, await redis.xrange(keys.inbound(), count=1, min=f"({letter_id}"))
    assert set(fields) == {b"body", b"received_at", b"sig"}
    # The processor reads it again (and, still unparsable, dead-letters it again).
    await processor.drain()
    assert len(await letter_ids(redis, keys)) == 1


async def test_replaying_an_applied_processor_letter_emits_no_second_batch(
    redis: aioredis.Redis, base_env: dict[str, str], lull_dead: RunDead
) -> None:
    processor = make_processor(redis, base_env, LULL_MAX_DELIVERIES="1", LULL_CLAIM_IDLE_MS="10")
    keys = processor.keys
    applied = messenger_body("a", "m-applied", "applied before")
    await ingest(redis, keys, applied)
    assert await processor.drain() == 1
    # Meta retries the first body, and a new one comes; a replica reads both and dies, and
    # the next claim finds them past LULL_MAX_DELIVERIES.
    await ingest(redis, keys, applied)
    await ingest(redis, keys, messenger_body("b", "m-new", "never applied"))
    await redis.xreadgroup("processor", "crashed", {keys.inbound(): ">"}, count=10)
    await idle_past(redis, keys.inbound(), "processor", 30)
    assert await processor.drain() == 0
    reasons = [f[b"_reason"] for _, f in cast(Rows, await redis.xrange(keys.dead()))]
    assert reasons == [b"max_deliveries exceeded (2)"] * 2

    code, out, _ = await lull_dead("replay", "--all")
    assert code == 0
    assert "replayed 2 dead letter(s)" in out
    assert await processor.drain() == 1  # the new body's batch; the applied one is a no-op
    texts = [
        orjson.loads(f[b"batch"])["text"]
        for _, f in cast(Rows, await redis.xrange(keys.outbound(0)))
    ]
    assert texts == ["applied before", "never applied"]
    metrics = generate_latest(processor.registry).decode()
    assert 'lull_processor_applied_total{result="duplicate"} 1.0' in metrics
    assert await redis.xlen(keys.dead()) == 0


async def test_a_sender_letter_is_replayed_once_and_dropped_with_its_mark(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, lull_dead: RunDead
) -> None:
    async with FakeBot("s") as bot:
        sender = await make_sender(LULL_HANDLER=bot.url, LULL_HANDLER_SECRET="s")
        keys = sender.keys
        bot.script(statuses=(404, 404))  # a bot bug: permanent
        kept = await emit(redis, keys, "u1", 1, "to replay")
        dropped = await emit(redis, keys, "u2", 1, "to drop")
        await sender.drain()
        ids = await letter_ids(redis, keys)
        assert len(ids) == 2
        marks = await dead_marks(redis, keys, kept, dropped)
        assert marks == {kept["batch_id"], dropped["batch_id"]}

        code, out, _ = await lull_dead("list", "--limit", "1")
        assert code == 0
        assert "sender" in out and "handler: bot answered 404" in out
        assert "messenger:p1:u1 #1: to replay" in out
        assert out.endswith("1 of 2 dead letter(s)\n")

        code, out, _ = await lull_dead("show", ids[0])
        assert code == 0
        assert "replay:      delivered" in out
        assert f'    "batch_id": "{kept["batch_id"]}",' in out  # pretty-printed, indented

        code, out, err = await lull_dead("drop", ids[1], "1-1")
        assert code == 1
        assert f"dropped {ids[1]} (" in out and "dropped 1 dead letter(s)" in out
        assert "no dead letter 1-1" in err
        assert await letter_ids(redis, keys) == [ids[0]]
        assert await dead_marks(redis, keys, kept, dropped) == {kept["batch_id"]}
        assert (await lull_dead("drop", ids[1]))[0] == 1  # gone already

        code, out, _ = await lull_dead("replay", ids[0])
        assert code == 0
        assert "replayed 1 dead letter(s)" in out and "note:" not in out
        await sender.drain()
        assert sent_texts(graph) == [("u1", "echo: to replay")]
        assert await dead_marks(redis, keys, kept, dropped) == set()

        # The dropped batch stays dropped: a copy of it is skipped, not delivered.
        await redis.xadd(keys.outbound(0), {"batch": orjson.dumps(dropped)})
        await sender.drain()
    assert sent_texts(graph) == [("u1", "echo: to replay")]
    assert [b["batch_id"] for b in bot.received[-1:]] == [kept["batch_id"]]


async def test_a_replay_of_an_unmarked_batch_is_noted_and_a_foreign_source_refused(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, lull_dead: RunDead
) -> None:
    sender = await make_sender(LULL_SHARDS="2")
    keys = sender.keys
    users = {keys.shard_of(f"messenger:p1:{u}"): u for u in ("a", "b", "c", "d", "e", "f")}
    graph.script([], latency_ms=0)
    # An account without a token: a permanent failure, dead-lettered, on each shard.
    for shard in (0, 1):
        await emit(redis, keys, users[shard], 1, f"shard {shard}", account="no-token")
    await sender.drain()
    by_source = {
        f[b"_source"].decode(): i.decode() for i, f in cast(Rows, await redis.xrange(keys.dead()))
    }
    assert set(by_source) == {keys.outbound(0), keys.outbound(1)}
    # An operator who lost the mark (a letter from before marks existed) is told.
    for user in users.values():
        conversation = f"messenger:no-token:{user}"
        if keys.shard_of(conversation) == 0:
            await redis.hdel(keys.conversation_state(conversation), keys.dead_batch_field(1))

    # With one shard configured, the shard-1 stream is not one lull reads: refused, kept.
    code, out, err = await lull_dead("replay", "--all", LULL_SHARDS="1")
    assert code == 1
    assert f"not replayed {by_source[keys.outbound(1)]}" in err
    assert "note: batch messenger:no-token:" in out and "skip it as a duplicate" in out
    assert "replayed 1 dead letter(s), 1 not replayed" in out
    assert await letter_ids(redis, keys) == [by_source[keys.outbound(1)]]
    await sender.drain()
    assert graph.sent == []
