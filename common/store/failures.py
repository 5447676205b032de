"""Failed deliveries reported by webhook, matched to the conversation that sent them, and
the most recent of them read back for `lull stats`.

A WhatsApp `failed` status names only the message id (wamid). The sender remembered, for
each message it sent, the conversation and the seq of its batch (sent.py); this store
looks the id up, then records the failure with one Lua call in that conversation's shard:
once (a seen marker per message id), in the shard's list of recent failures (`lull
stats`), and in the conversation's history, where the bot sees it with its next batch. A
failure of a message lull does not remember (sent by another app on the number, or
remembered for less than the failure took) is recorded as unmatched in the message id's
own shard, without a history item.

Each shard keeps its latest RECENT_FAILURES in a capped list; `recent_failures` reads the
head of every shard's list (one key per command, so it runs on Redis Cluster too) and
merges them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from redis.exceptions import NoScriptError, ResponseError

from lull.common.delivery import MAX_TITLE_CHARS, DeliveryFailure
from lull.common.outside_text import MAX_DETAIL_CHARS, cut
from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.scripts import LuaScript, is_noscript
from lull.common.store.sent import SentMessage

RECENT_FAILURES = 100
"""Failures each shard keeps for `lull stats`, newest first."""
SHOWN = 10
"""Failures `lull stats` shows, newest first."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One failure after the store saw it."""

    failure: DeliveryFailure
    sent: SentMessage | None
    """The conversation and seq of the batch that sent the message; None when lull does not
    remember the message."""
    new: bool
    """False when this failure was recorded before (a redelivered status)."""


class FailureStore:
    """Matches failures to sent messages and records each once."""

    def __init__(self, client: RedisClient, keys: Keys, seen_ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._seen_ttl_s = seen_ttl_s
        self._script = LuaScript.read("delivery_failed")

    async def load_scripts(self) -> None:
        """Register the script with Redis (SCRIPT LOAD is idempotent)."""
        await self._script.load(self._client)

    async def record(self, failures: Sequence[DeliveryFailure]) -> list[Recorded]:
        """Look up and record every failure; results in the same order. Repeating a call is
        safe: what was recorded before comes back with new=False."""
        if not failures:
            return []
        pipe = self._client.pipeline(transaction=False)
        for failure in failures:
            pipe.get(self._keys.sent_message(failure.message_id))
        found: list[bytes | None] = await pipe.execute()
        sent = [None if raw is None else SentMessage.decode(raw) for raw in found]
        try:
            results = await self._record(failures, sent)
        except NoScriptError:
            # Redis restarted and forgot the script; recording again is safe (seen marker).
            await self.load_scripts()
            results = await self._record(failures, sent)
        return [
            Recorded(failure, match, int(result) == 1)
            for failure, match, result in zip(failures, sent, results, strict=True)
        ]

    async def _record(
        self, failures: Sequence[DeliveryFailure], sent: Sequence[SentMessage | None]
    ) -> list[Any]:
        keys = self._keys
        pipe = self._client.pipeline(transaction=False)
        for failure, match in zip(failures, sent, strict=True):
            shard = keys.shard_of(failure.message_id if match is None else match.conversation)
            call_keys = [
                keys.failure_seen(shard, failure.message_id),
                keys.delivery_failures(shard),
            ]
            args: list[bytes | int] = [self._seen_ttl_s, RECENT_FAILURES, _summary(failure, match)]
            if match is not None:
                call_keys.append(keys.history(match.conversation))
                args.append(_history_item(failure))
            # execute_command, not pipe.evalsha: a cluster pipeline refuses the latter.
            pipe.execute_command(*self._script.command(call_keys, args))
        results: list[Any] = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, ResponseError):
                raise NoScriptError(str(result)) if is_noscript(result) else result
        return results


def _summary(failure: DeliveryFailure, sent: SentMessage | None) -> bytes:
    """The recent-failures entry `lull stats` shows."""
    return orjson.dumps(
        {
            "at_ms": failure.time_ms,
            "platform": failure.platform,
            "account_id": failure.account_id,
            "message_id": failure.message_id,
            "code": failure.code,
            "title": failure.title,
            "details": failure.details,
            "conversation": None if sent is None else sent.conversation,
            "seq": None if sent is None else sent.seq,
        }
    )


def _history_item(failure: DeliveryFailure) -> bytes:
    """What the bot sees in `history`: its reply `mid` did not arrive, and Meta's reason."""
    return orjson.dumps(
        {
            "role": "status",
            "status": "failed",
            "mid": failure.message_id,
            "time": failure.time_ms,
            "code": failure.code,
            "title": failure.title,
            "message": failure.message,
            "details": failure.details,
        }
    )


@dataclass(frozen=True, slots=True)
class RecentFailure:
    """One recorded failure (fields as _summary writes them)."""

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
