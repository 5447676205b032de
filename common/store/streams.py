"""Stream and consumer-group housekeeping: group creation, lag, trimming, consumer expiry.

Every function touches the keys of one stream only, so each works on Redis Cluster.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from lull.common.redis_conn import RedisClient
from lull.common.store.scripts import LuaScript

_MAX_SEQ = 2**64 - 1


def text(value: bytes | str) -> str:
    """A reply value as str, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value


def parse_id(entry_id: str) -> tuple[int, int]:
    """A stream id "ms-seq" as a comparable (ms, seq) pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(entry_id: str) -> str:
    """The smallest stream id greater than entry_id."""
    ms, seq = parse_id(entry_id)
    return f"{ms + 1}-0" if seq == _MAX_SEQ else f"{ms}-{seq + 1}"


async def ensure_group(client: RedisClient, stream: str, group: str) -> bool:
    """Create group on stream (and the stream) from id 0; False if it already existed.

    Id 0, not $: entries written before the group's first start (ingest may run before the
    processor ever did) are read, not skipped.
    """
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if str(exc).startswith("BUSYGROUP"):
            return False
        raise
    return True


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One consumer group of a stream, as XINFO GROUPS reports it."""

    name: str
    consumers: int
    pending: int
    """Entries delivered to the group and not acknowledged yet."""
    last_delivered_id: str
    lag: int | None
    """Entries not delivered to the group yet; None when Redis cannot tell (after XDEL)."""


async def group_infos(client: RedisClient, stream: str) -> list[GroupInfo]:
    """Every group of stream; empty when the stream does not exist."""
    try:
        rows = await client.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return []
        raise
    return [
        GroupInfo(
            name=text(row["name"]),
            consumers=int(row["consumers"]),
            pending=int(row["pending"]),
            last_delivered_id=text(row["last-delivered-id"]),
            # Redis 7 reports lag; older servers have no such field.
            lag=None if row.get("lag") is None else int(row["lag"]),
        )
        for row in rows
    ]


async def group_info(client: RedisClient, stream: str, group: str) -> GroupInfo | None:
    """Lag and pending of one group of stream; None when the group does not exist."""
    for info in await group_infos(client, stream):
        if info.name == group:
            return info
    return None


async def trim_acknowledged(client: RedisClient, stream: str) -> int:
    """XTRIM MINID below the oldest entry some group still needs; returns entries removed.

    An entry is kept while any group has it pending or has not been delivered it yet; a
    stream without groups is never trimmed. One Lua call (common/store/lua/stream_trim.lua), so a
    group created or moved back between the look and the trim cannot lose entries.
    """
    return int(await _script("stream_trim").call(client, (stream,), ()))


async def remove_idle_consumers(
    client: RedisClient, stream: str, group: str, *, idle_ms: int, keep: str
) -> list[str]:
    """XGROUP DELCONSUMER every consumer idle >= idle_ms that holds nothing, except keep.

    A consumer with pending entries is never removed: deleting it would drop its entries
    from the pending list, and nobody could claim them any more. The look and the removal
    are one Lua call (common/store/lua/consumer_expire.lua), so a consumer that wakes and reads in
    between cannot lose what it read.
    """
    removed: list[Any] = await _script("consumer_expire").call(
        client, (stream,), (group, idle_ms, keep)
    )
    return [text(name) for name in removed]


@functools.cache
def _script(name: str) -> LuaScript:
    """A script of the store's lua/, read once per process (immutable, so safe to share)."""
    return LuaScript.read(name)
