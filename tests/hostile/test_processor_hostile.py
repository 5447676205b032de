"""The processor fed garbage that passed ingest's envelope check, mixed with real messages.

Whatever arrives: reading until idle never raises, nothing is left pending, garbage is
skipped and counted (or dead-lettered), every valid message lands in exactly one batch,
and every batch emitted is well-formed.
"""

from __future__ import annotations

import io
import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from lull.common.signing import sign
from lull.common.store.keys import Keys
from lull.processor.app import GROUP, Processor
from tests.hostile.batches import check_seqs, dead_letters, read_batches
from tests.hostile.bodies import (
    ACCOUNTS,
    ENVELOPE_GARBAGE,
    PLATFORM_OBJECTS,
    Body,
    body_of,
    huge_array,
    mutated_fixture,
    text_body,
    text_item,
    unicode_body,
)
from tests.hostile.conftest import SECRET, IngestClient
from tests.processor.windowing import redis_now_ms

HOSTILE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PLATFORMS = sorted(PLATFORM_OBJECTS)
GARBAGE = st.one_of(
    ENVELOPE_GARBAGE,
    mutated_fixture(),
    unicode_body(),
    st.builds(huge_array, st.integers(min_value=0, max_value=5000), st.sampled_from(
        [b"null", b"{}", b'{"messaging":[{}]}', b'{"changes":[1]}', b'{"messaging":7}']
    )),
).map(Body)  # fmt: skip


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The value of one metric sample, 0 when it was never set."""
    return registry.get_sample_value(name, labels) or 0.0


@dataclass
class Run:
    """What one test has sent and seen so far (hypothesis calls the test many times)."""

    valid: dict[str, tuple[str, str]] = field(default_factory=dict)
    """mid -> (conversation, text) of every valid message sent."""
    batches: list[dict[str, Any]] = field(default_factory=list)
    after: dict[str, bytes] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def __repr__(self) -> str:
        # Hypothesis prints the fixtures of a failing example: keep that short.
        return f"Run({len(self.valid)} valid messages, {len(self.batches)} batches)"


@pytest.fixture
def run() -> Run:
    """The test's running record."""
    return Run()


async def post(ingest: IngestClient, body: bytes) -> int:
    """POST a correctly signed body; the status ingest answered."""
    headers = {"X-Hub-Signature-256": sign(SECRET, body)}
    response = await ingest.post("/webhook", data=io.BytesIO(body), headers=headers)
    return response.status


async def settle(processor: Processor, redis: aioredis.Redis, run: Run) -> list[dict[str, Any]]:
    """Read until idle, emit every open window, and check what must always hold."""
    await processor.start()
    await processor.consumer.run_until_idle()
    await processor.closer.close_due(everything=True)
    keys = processor.keys
    [group] = [g for g in await redis.xinfo_groups(keys.inbound()) if g["name"] == GROUP.encode()]
    assert group["pending"] == 0
    assert group["lag"] == 0
    assert sample(processor.registry, "lull_consumer_handler_errors_total", group=GROUP) == 0
    new = await read_batches(redis, keys, run.after)
    run.batches.extend(new)
    check_seqs(run.batches)
    return new


def check_valid_messages(run: Run) -> None:
    """Every valid message is in exactly one batch, of its conversation, with its text."""
    where: dict[str, list[dict[str, Any]]] = {}
    for batch in run.batches:
        for message in batch["messages"]:
            if message["mid"] in run.valid:
                where.setdefault(message["mid"], []).append(batch)
                assert message["text"] == run.valid[message["mid"]][1]
    for mid, (conversation, _text) in run.valid.items():
        assert [b["conversation"] for b in where.get(mid, [])] == [conversation], mid


@HOSTILE
@given(
    garbage=st.lists(GARBAGE, min_size=1, max_size=5),
    valid=st.lists(st.tuples(st.sampled_from(PLATFORMS), st.text(max_size=30)), max_size=3),
    # A seed, not st.randoms(): that draws lazily, and a draw past hypothesis's budget ends
    # the example midway.
    seed=st.integers(min_value=0, max_value=2**32),
)
async def test_garbage_beside_valid_messages(  # noqa: PLR0917  (fixtures, then drawn values)
    ingest: IngestClient,
    processor: Processor,
    redis: aioredis.Redis,
    run: Run,
    garbage: list[Body],
    valid: list[tuple[str, str]],
    seed: int,
) -> None:
    now_ms = await redis_now_ms(redis)
    bodies: list[tuple[bytes, tuple[str, str, str] | None]] = [(b.data, None) for b in garbage]
    for platform, text in valid:
        n = next(run.ids)
        user, mid = f"valid-user-{n}", f"valid-mid-{n}"
        conversation = f"{platform}:{ACCOUNTS[platform]}:{user}"
        bodies.append((text_body(platform, user, mid, text, now_ms), (mid, conversation, text)))
    random.Random(seed).shuffle(bodies)
    for body, valid_message in bodies:
        status = await post(ingest, body)
        # Ingest checks the envelope only; garbage outside it was refused there.
        assert status in ((200,) if valid_message else (200, 400, 413))
        if valid_message is not None:
            mid, conversation, text = valid_message
            run.valid[mid] = (conversation, text)
    dead_before = await redis.xlen(processor.keys.dead())
    await settle(processor, redis, run)
    # Every stored body is a JSON object, which the parsers never refuse outright: a garbage
    # body dies only for the items it holds that cannot be batched, and says so.
    dead = await dead_letters(redis, processor.keys)
    valid_bodies = {body for body, valid_message in bodies if valid_message is not None}
    for fields in dead[dead_before:]:
        assert fields[b"_reason"].startswith(b"left out of every batch: ")
        assert fields[b"body"] not in valid_bodies
    check_valid_messages(run)


def deep(depth: int) -> Any:
    """A list nested depth levels deep."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [251, 400])
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_item_too_deep_for_a_batch_is_dead_lettered_alone(  # noqa: PLR0917  (fixtures, then parameters)
    ingest: IngestClient,
    processor: Processor,
    redis: aioredis.Redis,
    run: Run,
    platform: str,
    depth: int,
) -> None:
    # orjson reads 1024 levels but writes only 254. At 251 the item itself is written, but
    # not inside a batch (3 levels more) or a handoff notice (4): the sender could not send
    # the batch, and every message beside it would die with it. At 400 the item parses, then
    # cannot be written at all.
    now_ms = await redis_now_ms(redis)
    item = text_item(platform, "same-user", "deep-mid", "too deep", now_ms)
    item["extra"] = deep(depth)
    deep_body = json.dumps(body_of(platform, item)).encode()
    before = text_body(platform, "same-user", "before-mid", "before", now_ms)
    valid = text_body(platform, "ok-user", "ok-mid", "still here", now_ms)
    for body in (before, deep_body, valid):
        assert await post(ingest, body) == 200
    batches = await settle(processor, redis, run)
    assert sorted((b["user_id"], b["text"]) for b in batches) == [
        ("ok-user", "still here"),
        ("same-user", "before"),
    ]
    # Dead-lettered alone, at the processor, with its reason; the sender never sees it.
    [dead] = await dead_letters(redis, processor.keys)
    assert dead[b"body"] == deep_body
    assert b"'deep-mid'" in dead[b"_reason"]
    assert b"cannot be written in a batch" in dead[b"_reason"]
    ignored = sample(
        processor.registry, "lull_processor_ignored_total", platform=platform, kind="unbatchable"
    )
    assert ignored == 1


async def test_huge_arrays_of_junk_items(
    ingest: IngestClient, processor: Processor, redis: aioredis.Redis, run: Run
) -> None:
    # Just under 3 MiB each: hundreds of thousands of items that are not messages.
    for item in (b"null", b"{}", b'{"message":{}}'):
        count = (3 * 1024 * 1024 - 200) // (len(item) + 1)
        body = (
            b'{"object":"page","entry":[{"id":"1","messaging":['
            + b",".join([item] * count)
            + b"]}]}"
        )
        assert await post(ingest, body) == 200
    now_ms = await redis_now_ms(redis)
    assert await post(ingest, text_body("messenger", "u", "m", "after the junk", now_ms)) == 200
    batches = await settle(processor, redis, run)
    assert [b["text"] for b in batches] == ["after the junk"]
    total = sum(
        sample(processor.registry, "lull_processor_ignored_total", platform="messenger", kind=k)
        for k in ("malformed", "unknown")
    )
    assert total > 800_000


async def test_entries_ingest_would_never_write(
    processor: Processor, redis: aioredis.Redis, run: Run
) -> None:
    # Written around ingest (an operator's replay, another tool): no body, not JSON, an array.
    keys: Keys = processor.keys
    now_ms = await redis_now_ms(redis)
    for fields in (
        {b"received_at": b"1"},
        {b"body": b"\xff\xfe", b"received_at": b"x"},
        {b"body": b"[1,2]"},
        {b"body": b'"page"', b"received_at": b"-5"},
        {b"body": text_body("whatsapp", "u9", "m9", "fine", now_ms), b"received_at": b"soon"},
    ):
        await redis.xadd(keys.inbound(), fields)  # type: ignore[arg-type]
    batches = await settle(processor, redis, run)
    assert [b["text"] for b in batches] == ["fine"]
    dead = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.dead()))
    assert len(dead) == 4
    # Each dead letter keeps what was written and says why.
    assert all(f[b"_reason"] for _id, f in dead)
    assert [f.get(b"body") for _id, f in dead] == [None, b"\xff\xfe", b"[1,2]", b'"page"']


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_an_item_with_a_bad_timestamp_is_dead_lettered_with_its_body_not_dropped(
    ingest: IngestClient, processor: Processor, redis: aioredis.Redis, run: Run, platform: str
) -> None:
    # The README promises that what cannot be parsed goes to the dead letters: before 0.3 a
    # bad timestamp was only counted.
    now_ms = await redis_now_ms(redis)
    good = text_item(platform, "ts-user", "good-mid", "fine", now_ms)
    bad = text_item(platform, "ts-user", "bad-mid", "when?", now_ms)
    bad["timestamp"] = "yesterday"
    body = json.dumps(body_of(platform, good, bad)).encode()
    assert await post(ingest, body) == 200
    batches = await settle(processor, redis, run)
    assert [b["text"] for b in batches] == ["fine"]
    [dead] = await dead_letters(redis, processor.keys)
    assert dead[b"body"] == body
    assert (
        dead[b"_reason"]
        == f"left out of every batch: 1 {platform} item(s) could not be parsed".encode()
    )
