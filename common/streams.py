"""Stream and consumer-group housekeeping: group creation, lag, trimming, consumer expiry.

Every function touches the keys of one stream only, so each works on Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

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


async def ensure_group(client: aioredis.Redis, stream: str, group: str) -> bool:
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


async def group_infos(client: aioredis.Redis, stream: str) -> list[GroupInfo]:
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


async def group_info(client: aioredis.Redis, stream: str, group: str) -> GroupInfo | None:
    """Lag and pending of one group of stream; None when the group does not exist."""
    for info in await group_infos(client, stream):
        if info.name == group:
            return info
    return None


async def trim_acknowledged(client: aioredis.Redis, stream: str) -> int:
    """XTRIM MINID below the oldest entry some group still needs; returns entries removed.

    An entry is kept while any group has it pending or has not been delivered it yet; a
    stream without groups is never trimmed (nobody has said what it has consumed). Never
    MAXLEN: a length cap would drop entries no group has processed.
    """
    groups = await group_infos(client, stream)
    if not groups:
        return 0
    needed: list[tuple[int, int]] = []
    for group in groups:
        first_needed = next_id(group.last_delivered_id)
        if group.pending > 0:
            summary = await client.xpending(stream, group.name)
            if summary["min"] is not None:
                first_needed = text(summary["min"])
        needed.append(parse_id(first_needed))
    ms, seq = min(needed)
    # Between XINFO and XTRIM a group can only move forward (reads deliver ids above its
    # last-delivered id), so this threshold stays safe; the one exception, a group created
    # or SETID'd backwards in that window, would lose only entries older than its own start.
    trimmed = await client.xtrim(stream, minid=f"{ms}-{seq}", approximate=False)
    return int(trimmed)


async def remove_idle_consumers(
    client: aioredis.Redis, stream: str, group: str, *, idle_ms: int, keep: str
) -> dict[str, int]:
    """XGROUP DELCONSUMER every consumer idle >= idle_ms that holds nothing, except keep.

    Returns removed name -> pending entries the removal dropped (0 unless the consumer read
    between our look and the removal, which the caller should log loudly).

    A consumer with pending entries is never removed: deleting it would drop its entries
    from the pending list, and nobody could claim them any more.
    """
    try:
        rows = await client.xinfo_consumers(stream, group)
    except ResponseError as exc:
        if str(exc).startswith("NOGROUP") or "no such key" in str(exc).lower():
            return {}
        raise
    removed: dict[str, int] = {}
    for row in rows:
        name = text(row["name"])
        if name == keep or int(row["pending"]) > 0 or int(row["idle"]) < idle_ms:
            continue
        # DELCONSUMER returns the pending count it dropped. A consumer idle this long does
        # not read between XINFO and here unless its process was frozen that long.
        removed[name] = int(await client.xgroup_delconsumer(stream, group, name))
    return removed
