"""The most recent delivery failures for `lull stats`: replies the platform accepted and
later reported undelivered (WhatsApp `failed` statuses, recorded by processor/failures.py).

Each shard keeps its latest RECENT_FAILURES in a capped list; this reads the head of every
shard's list (one key per command, so it runs on Redis Cluster too) and merges them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from lull.common.delivery import MAX_TITLE_CHARS
from lull.common.outside_text import MAX_DETAIL_CHARS, cut
from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys

SHOWN = 10
"""Failures `lull stats` shows, newest first."""


@dataclass(frozen=True, slots=True)
class RecentFailure:
    """One recorded failure (fields as processor/failures.py stores them)."""

    at_ms: int
    """When the platform reported it."""
    platform: str
    account_id: str
    message_id: str
    code: int | None
    title: str
    details: str
    conversation: str | None
    """None: lull did not remember sending that message."""
    seq: int | None

    def as_json(self) -> dict[str, Any]:
        """For `lull stats --json`."""
        return asdict(self)


async def recent_failures(
    client: RedisClient, keys: Keys, shown: int = SHOWN
) -> list[RecentFailure]:
    """The newest `shown` failures over every shard, newest first."""
    pipe = client.pipeline(transaction=False)
    for shard in range(keys.shards):
        pipe.lrange(keys.delivery_failures(shard), 0, shown - 1)
    found: list[RecentFailure] = []
    for items in await pipe.execute():
        found += [failure for item in items if (failure := _decode(item)) is not None]
    found.sort(key=lambda failure: failure.at_ms, reverse=True)
    return found[:shown]


def _decode(raw: bytes) -> RecentFailure | None:
    try:
        value = orjson.loads(raw)
        return RecentFailure(
            at_ms=int(value["at_ms"]),
            platform=str(value["platform"]),
            account_id=str(value["account_id"]),
            message_id=str(value["message_id"]),
            code=value["code"] if isinstance(value["code"], int) else None,
            # Cut again on the way out: a version before the bound stored them whole.
            title=cut(str(value["title"]), MAX_TITLE_CHARS),
            details=cut(str(value["details"]), MAX_DETAIL_CHARS),
            conversation=value["conversation"] if isinstance(value["conversation"], str) else None,
            seq=value["seq"] if isinstance(value["seq"], int) else None,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # written by another version: skip rather than fail the whole screen
