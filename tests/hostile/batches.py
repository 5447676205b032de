"""What a well-formed batch is (DESIGN.md, "The batch"), checked field by field."""

from __future__ import annotations

from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from lull.common.conversation import PLATFORMS
from lull.common.store.keys import Keys

BATCH_FIELDS: dict[str, type] = {
    "batch_id": str,
    "seq": int,
    "platform": str,
    "account_id": str,
    "user_id": str,
    "conversation": str,
    "messages": list,
    "text": str,
    "first_event_time": int,
    "last_event_time": int,
    "opened_at": int,
    "closed_at": int,
    "close_reason": str,
}
MESSAGE_FIELDS: dict[str, type] = {
    "mid": str,
    "event_time": int,
    "received_at": int,
    "kind": str,
    "text": str,
    "attachments": list,
    "raw": dict,
}
CLOSE_REASONS = frozenset(("gap", "max_wait", "max_messages", "max_bytes", "flush"))


def _typed(value: Any, expected: type) -> bool:
    # bool is an int subclass: true is not a number of milliseconds.
    return type(value) is int if expected is int else isinstance(value, expected)


def check_batch(batch: dict[str, Any]) -> None:
    """Assert every DESIGN.md field is there with its type, and the derived fields agree."""
    for name, expected in BATCH_FIELDS.items():
        assert name in batch, f"batch without {name}: {batch}"
        assert _typed(batch[name], expected), f"batch {name}={batch[name]!r}"
    assert batch["platform"] in PLATFORMS
    conversation = f"{batch['platform']}:{batch['account_id']}:{batch['user_id']}"
    assert batch["conversation"] == conversation
    assert batch["batch_id"] == f"{conversation}:{batch['seq']}"
    assert batch["seq"] >= 1
    assert batch["close_reason"] in CLOSE_REASONS
    assert batch["opened_at"] <= batch["closed_at"]
    messages = batch["messages"]
    assert messages, "a batch carries at least one message"
    for message in messages:
        assert isinstance(message, dict)
        for name, expected in MESSAGE_FIELDS.items():
            assert name in message, f"message without {name}: {message}"
            assert _typed(message[name], expected), f"message {name}={message[name]!r}"
        assert all(
            isinstance(a, dict) and isinstance(a.get("type"), str) for a in message["attachments"]
        )
    mids = [m["mid"] for m in messages]
    assert len(set(mids)) == len(mids), f"a message twice in one batch: {mids}"
    assert batch["text"] == "\n".join(m["text"] for m in messages if m["text"])
    times = [m["event_time"] for m in messages]
    assert (batch["first_event_time"], batch["last_event_time"]) == (min(times), max(times))


async def read_batches(
    client: aioredis.Redis, keys: Keys, after: dict[str, bytes] | None = None
) -> list[dict[str, Any]]:
    """Batches on every outbound stream (after the ids in `after`, which is moved on), checked."""
    found: list[dict[str, Any]] = []
    for stream in keys.all_outbound():
        start = b"(" + after[stream] if after is not None and stream in after else b"-"
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(stream, min=start)
        )
        for entry_id, fields in entries:
            assert set(fields) == {b"batch"}
            batch = orjson.loads(fields[b"batch"])
            check_batch(batch)
            found.append(batch)
            if after is not None:
                after[stream] = entry_id
    return found


def check_seqs(batches: list[dict[str, Any]]) -> None:
    """Each conversation's batches are numbered one after the other in stream order (a
    conversation's life starts its seq at a base from the Redis clock, not at 1)."""
    seen: dict[str, int] = {}
    for batch in batches:
        conversation = batch["conversation"]
        expected = seen.get(conversation, batch["seq"] - 1) + 1
        assert batch["seq"] == expected, f"{conversation}: seq {batch['seq']}, not {expected}"
        seen[conversation] = expected


async def dead_letters(client: aioredis.Redis, keys: Keys) -> list[dict[bytes, bytes]]:
    """The fields of every dead letter, oldest first."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(keys.dead()))
    return [fields for _id, fields in entries]
