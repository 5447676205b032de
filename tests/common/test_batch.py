"""The typed batch: every batch the real close script writes decodes, and encodes back to the
bytes 0.1 handed the bot; what it does not know passes through; what it cannot use is refused."""

from __future__ import annotations

import time
from typing import cast

import orjson
import pytest
import redis.asyncio as aioredis

from lull.common.batch import Batch
from lull.common.store.keys import Keys
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.conftest import FIXTURES


async def _closed_batches(redis: aioredis.Redis, base_env: dict[str, str]) -> list[bytes]:
    """Every fixture body through a real processor; the raw `batch` fields it emitted."""
    env = {"LULL_WINDOW_MS": "20", "LULL_MAX_WAIT_MS": "1000", **base_env}
    processor = Processor(redis, ProcessorSettings.from_env(env))
    for path in sorted(FIXTURES.glob("*/*.json")):
        fields = {"body": path.read_bytes(), "received_at": int(time.time() * 1000), "sig": "ok"}
        await redis.xadd(processor.keys.inbound(), fields)  # type: ignore[arg-type]
    await processor.drain()
    keys: Keys = processor.keys
    raw: list[bytes] = []
    for stream in keys.all_outbound():
        rows = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(stream))
        raw.extend(fields[b"batch"] for _id, fields in rows)
    return raw


async def test_every_emitted_batch_round_trips_to_the_json_the_bot_got(
    redis: aioredis.Redis, base_env: dict[str, str]
) -> None:
    raw = await _closed_batches(redis, base_env)
    assert len(raw) >= 3
    for item in raw:
        batch = Batch.decode(item)
        # 0.1 posted orjson.dumps of the decoded dict: the same bytes, field for field.
        assert batch.encode() == orjson.dumps(orjson.loads(item))
        assert batch.messages and all(m.mid for m in batch.messages)


def _doc(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "batch_id": "messenger:p1:u1:1", "seq": 1, "platform": "messenger",
        "account_id": "p1", "user_id": "u1", "conversation": "messenger:p1:u1",
        "messages": [{"mid": "m1", "event_time": 5, "received_at": 6, "kind": "text",
                      "text": "hi", "attachments": [], "raw": {"mid": "m1"}}],
        "text": "hi", "first_event_time": 5, "last_event_time": 5, "opened_at": 5,
        "closed_at": 9, "close_reason": "gap",
    }  # fmt: skip
    doc.update(changes)
    return doc


def test_fields_it_does_not_know_pass_through_in_place() -> None:
    doc = _doc(version=2, handoff={"reason": "x"})
    assert Batch.decode(orjson.dumps(doc)).encode() == orjson.dumps(doc)


def test_a_batch_written_before_the_version_field_reaches_the_bot_as_version_1() -> None:
    old = _doc()  # 0.1's fields: an entry still on the stream when lull was upgraded
    batch = Batch.decode(orjson.dumps(old))
    assert batch.version == 1
    assert batch.encode() == orjson.dumps({**old, "version": 1})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "no batch field"),
        (b"{", "not JSON"),
        (b"[]", "not an object"),
        (orjson.dumps({k: v for k, v in _doc().items() if k != "seq"}), "lacks seq"),
        (orjson.dumps(_doc(seq=0)), "bad seq"),
        (orjson.dumps(_doc(seq=True)), "bad seq"),
        (orjson.dumps(_doc(user_id=7)), "user_id must be strings"),
        (orjson.dumps(_doc(messages={})), "messages must be a list"),
        (orjson.dumps(_doc(messages=[{"mid": "m"}])), r"messages\[0\] lacks"),
        (orjson.dumps(_doc(version="1")), "bad version"),
        (orjson.dumps(_doc(version=0)), "bad version"),
    ],
)
def test_what_the_sender_cannot_use_is_refused_with_a_reason(
    raw: bytes | None, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        Batch.decode(raw)


def test_paused_is_optional_and_written_only_when_set() -> None:
    doc = {
        "batch_id": "messenger:p:u:1", "seq": 1, "platform": "messenger", "account_id": "p",
        "user_id": "u", "conversation": "messenger:p:u", "messages": [],
    }  # fmt: skip
    old = Batch.from_dict(doc)  # written before the field existed
    assert old.paused is False and "paused" not in old.to_dict()
    stamped = Batch.from_dict({**doc, "paused": True})
    assert stamped.paused is True and stamped.to_dict()["paused"] is True
    assert Batch.decode(stamped.encode()).paused is True
    # Only JSON true stamps a batch: a forged "yes" does not silence the bot.
    assert Batch.from_dict({**doc, "paused": "yes"}).paused is False
