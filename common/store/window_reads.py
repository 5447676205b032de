"""Windows read for operators: one conversation's window header (`lull conversation`, the
admin API) and a scan of every open window (`lull stats`). The header is the struct HDR of
lua/window_layout.lua; every command touches one key, so this runs on Redis Cluster too.
Headers are read with GETRANGE, in pipelined batches for the scan.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.streams import text

WINDOW_HEADER = struct.Struct("<ddddIIIIB")
"""struct HDR of lua/window_layout.lua ('<ddddI4I4I4I4B'): first_t, last_t, opened_at,
deadline (doubles, ms; deadline 0: no window open), count, bytes, arrivals, seen_len
(uint32), close reason (byte)."""
MAX_SAMPLED_WINDOWS = 10_000
"""Above this many open windows, only the earliest-deadline ones are read for the age."""
GETRANGE_BATCH = 1_000
"""Headers read per pipeline."""


@dataclass(frozen=True, slots=True)
class OpenWindow:
    """A window collecting the user's messages, not yet closed into a batch."""

    opened_at_ms: int
    deadline_ms: int
    messages: int
    bytes: int
    first_event_ms: int
    last_event_ms: int


def open_window(header: bytes) -> OpenWindow | None:
    """The open window a header (GETRANGE of its first WINDOW_HEADER.size bytes) describes;
    None when no window is open."""
    if len(header) < WINDOW_HEADER.size:
        return None
    first_t, last_t, opened_at, deadline, count, size, *_ = WINDOW_HEADER.unpack(header)
    if deadline <= 0:
        return None
    return OpenWindow(
        opened_at_ms=int(opened_at),
        deadline_ms=int(deadline),
        messages=int(count),
        bytes=int(size),
        first_event_ms=int(first_t),
        last_event_ms=int(last_t),
    )


@dataclass(frozen=True, slots=True)
class WindowScan:
    """What a scan of the open windows found (lull stats turns it into its figures)."""

    open_per_shard: tuple[int, ...]
    earliest_deadline: tuple[float, str] | None
    earliest_open: tuple[float, str] | None
    sampled: int
    approximate: bool


async def scan_windows(client: RedisClient, keys: Keys, max_sampled: int) -> WindowScan:
    """Every shard's open windows counted; the earliest deadline, and the earliest-opened of
    the windows sampled (all of them up to max_sampled; else the earliest deadlines)."""
    shards = range(keys.shards)
    pipe = client.pipeline(transaction=False)
    for shard in shards:
        pipe.zcard(keys.due(shard))
    counts = tuple(int(n) for n in await pipe.execute())
    total = sum(counts)
    per_shard = max(1, max_sampled // keys.shards) if total > max_sampled else None
    # The earliest deadlines of each shard: the most overdue one, and the windows to sample.
    pipe = client.pipeline(transaction=False)
    for shard, count in zip(shards, counts, strict=True):
        take = count if per_shard is None else min(count, per_shard)
        pipe.zrange(keys.due(shard), 0, max(take, 1) - 1, withscores=True)
    ranges: list[list[tuple[bytes, float]]] = await pipe.execute()
    earliest_deadline: tuple[float, str] | None = None
    members: list[tuple[str, str]] = []  # (conversation key, conversation)
    for shard, found in zip(shards, ranges, strict=True):
        prefix = keys.conversation_prefix(shard)
        for member, deadline in found:
            conversation = text(member)
            members.append((prefix + conversation, conversation))
            if earliest_deadline is None or deadline < earliest_deadline[0]:
                earliest_deadline = (deadline, conversation)
    earliest_open = await _earliest_open(client, members)
    return WindowScan(
        open_per_shard=counts,
        earliest_deadline=earliest_deadline,
        earliest_open=earliest_open,
        sampled=len(members),
        approximate=per_shard is not None,
    )


async def _earliest_open(
    client: RedisClient, members: list[tuple[str, str]]
) -> tuple[float, str] | None:
    """(opened_at, conversation) of the earliest-opened window among members."""
    earliest: tuple[float, str] | None = None
    for start in range(0, len(members), GETRANGE_BATCH):
        batch = members[start : start + GETRANGE_BATCH]
        pipe = client.pipeline(transaction=False)
        for key, _ in batch:
            pipe.getrange(key, 0, WINDOW_HEADER.size - 1)
        headers: list[bytes] = await pipe.execute()
        for (_, conversation), header in zip(batch, headers, strict=True):
            if len(header) < WINDOW_HEADER.size:
                continue  # closed and expired since the ZRANGE
            _first, _last, opened_at, deadline, *_ = WINDOW_HEADER.unpack(header)
            # deadline 0: closed since the ZRANGE (the key only remembers seen mids now).
            if deadline > 0 and (earliest is None or opened_at < earliest[0]):
                earliest = (opened_at, conversation)
    return earliest
