"""Every field of every fixture, removed or given each wrong type, through the parsers and on
through a real processor.

tests/common/test_platforms_fuzz.py samples such mutations at random; this sweep tries all
of them, so a field no random run happened to pick cannot hide a crash.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from lull.common.events import MalformedBody
from lull.common.platforms import parse
from lull.ingest.writer import StreamWriter
from lull.processor.app import GROUP, Processor
from tests.common.test_platforms_fuzz import FIXTURE_DOCS, MISSING, check, mutated, paths
from tests.hostile.batches import check_seqs, dead_letters, read_batches


def deep(depth: int) -> Any:
    """A list nested depth levels deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


WRONG_VALUES: tuple[Any, ...] = (
    MISSING, None, True, False, 0, -1, 1.5, -0.0, 2**63, 2**64, -(2**63) - 1,
    "", "x", "\x00", "\ud800", "1763800000", "9" * 30, "x" * 10_000,
    [], {}, [None], {"id": None}, [[[]]], {"": {}}, deep(300), list(range(1000)),
)  # fmt: skip


def sweep() -> Iterator[tuple[int, tuple[Any, ...], int, bytes]]:
    """(fixture, path, wrong value index, body) for every field and wrong value."""
    for doc_index, doc in enumerate(FIXTURE_DOCS):
        for path in paths(doc):
            for value_index, value in enumerate(WRONG_VALUES):
                # The stdlib encoder writes what orjson will not: 300 levels, lone surrogates.
                body = json.dumps(mutated(doc, path, value)).encode()
                yield doc_index, path, value_index, body


def test_every_field_with_every_wrong_type() -> None:
    parsed_count = malformed = 0
    for doc_index, path, value_index, body in sweep():
        try:
            parsed = check(body)
        except Exception as exc:  # report which mutation crashed, then fail
            raise AssertionError(
                f"fixture {doc_index} path {path} value {WRONG_VALUES[value_index]!r:.60}"
            ) from exc
        if parsed is None:
            malformed += 1
        else:
            parsed_count += 1
    # Only a replaced root (or an unencodable escape) makes the whole body malformed.
    assert parsed_count > 10 * malformed > 0


async def test_swept_bodies_through_a_processor(
    processor: Processor, redis: aioredis.Redis
) -> None:
    # One wrong value per field (turn by turn), stored as ingest stores them: every event
    # the parsers let through must also survive the window scripts and the batch encoder.
    writer = StreamWriter(redis, processor.keys.inbound())
    stored = 0
    for n, (_doc, _path, value_index, body) in enumerate(sweep()):
        if value_index != n // len(WRONG_VALUES) % len(WRONG_VALUES):
            continue
        try:
            has_events = bool(parse(body).events)
        except MalformedBody:
            has_events = False
        if has_events:
            await writer.add({b"body": body, b"received_at": 1763800000000, b"sig": b"ok"})
            stored += 1
    await writer.stop()
    assert stored > 300
    await processor.start()
    await processor.consumer.run_until_idle()
    await processor.closer.close_due(everything=True)
    keys = processor.keys
    [group] = [g for g in await redis.xinfo_groups(keys.inbound()) if g["name"] == GROUP.encode()]
    assert (group["pending"], group["lag"]) == (0, 0)
    # A body with an item left out (unparseable, too deep for a batch) is a dead letter that
    # says so; nothing else dies.
    for fields in await dead_letters(redis, keys):
        assert fields[b"_reason"].startswith(b"left out of every batch: "), fields[b"_reason"]
    errors = processor.registry.get_sample_value(
        "lull_consumer_handler_errors_total", {"group": GROUP}
    )
    assert not errors
    batches = await read_batches(redis, keys)
    assert batches
    check_seqs(batches)


@pytest.mark.parametrize("depth", [250, 254, 255, 300, 1000])
def test_raw_nesting_at_orjson_limits(depth: int) -> None:
    # Parsing keeps the item as is; the processor skips it if it cannot be written back.
    doc = copy.deepcopy(FIXTURE_DOCS[0])
    doc["entry"][0]["messaging"][0]["message"]["extra"] = "@@"
    body = json.dumps(doc).encode().replace(b'"@@"', b"[" * depth + b"]" * depth)
    parsed = check(body)
    assert parsed is not None
    assert len(parsed.events) == 1
