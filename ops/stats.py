"""What lull holds in Redis right now: streams, groups, consumers, open windows, dead letters,
recent delivery failures.

Read from Redis alone, so it works with no service running. Every command touches one key
(one stream, one due set, one conversation), so it runs on Redis Cluster too.

The age of an open window comes from its header (common/store/window_reads.py): `opened_at`
is the Redis clock when its first message was applied; with more than MAX_SAMPLED_WINDOWS
open windows only the earliest-deadline ones are read, and the age is marked approximate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import ResponseError

from lull.common.redis_conn import RedisClient
from lull.common.store.failures import RecentFailure, recent_failures
from lull.common.store.keys import PROCESSOR_GROUP, SENDER_GROUP, Keys
from lull.common.store.streams import GroupInfo, group_infos, text
from lull.common.store.window_reads import MAX_SAMPLED_WINDOWS, WindowScan, scan_windows

T = TypeVar("T")
U = TypeVar("U")

CONCURRENT_STREAMS = 16
"""Streams asked about at once (stays well inside the client's connection pool)."""


@dataclass(frozen=True, slots=True)
class StreamStats:
    """A stream and the lull group that reads it."""

    stream: str
    length: int
    group: str
    group_exists: bool
    lag: int | None
    """Entries the group has not read yet (the whole stream when the group does not exist:
    groups start at id 0); None when Redis cannot tell."""
    pending: int
    """Entries read and not acknowledged yet."""


@dataclass(frozen=True, slots=True)
class GroupStats:
    """One consumer group of a stream, lull's or another."""

    stream: str
    group: str
    consumers: int
    pending: int
    lag: int | None
    last_delivered_id: str


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    """One consumer of a group."""

    stream: str
    group: str
    name: str
    pending: int
    idle_ms: int
    """Since its last read attempt."""
    inactive_ms: int | None
    """Since its last successful read; None before Redis 7.2 or when it never read."""


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Open windows over every shard."""

    open_per_shard: tuple[int, ...]
    oldest_age_ms: int | None
    """Now minus the earliest open time; None when no window is open."""
    oldest_conversation: str | None
    sampled: int
    """Window headers read to find the oldest."""
    approximate: bool
    """True when not every open window was read (see MAX_SAMPLED_WINDOWS)."""
    most_overdue_ms: int | None
    """Now minus the earliest deadline, when that deadline is past; None otherwise."""
    most_overdue_conversation: str | None

    @property
    def open(self) -> int:
        """Open windows in all shards."""
        return sum(self.open_per_shard)


@dataclass(frozen=True, slots=True)
class Stats:
    """Everything `lull stats` shows."""

    namespace: str
    shards: int
    redis_time_ms: int
    inbound: StreamStats
    outbound: tuple[StreamStats, ...]
    groups: tuple[GroupStats, ...]
    consumers: tuple[ConsumerStats, ...]
    windows: WindowStats
    dead_letters: int
    delivery_failures: tuple[RecentFailure, ...] = ()
    """The newest replies reported undelivered after the send (common/store/failures.py)."""


async def _each(items: Sequence[T], call: Callable[[T], Awaitable[U]]) -> list[U]:
    """call(item) for every item, CONCURRENT_STREAMS at a time, results in order."""
    results: list[U] = []
    for start in range(0, len(items), CONCURRENT_STREAMS):
        chunk = items[start : start + CONCURRENT_STREAMS]
        results.extend(await asyncio.gather(*(call(item) for item in chunk)))
    return results


async def _consumers(client: RedisClient, stream: str, group: str) -> list[ConsumerStats]:
    try:
        rows: list[dict[str, Any]] = await client.xinfo_consumers(stream, group)
    except ResponseError as exc:
        # The group or stream went away between XINFO GROUPS and now: it has no consumers.
        if "NOGROUP" in str(exc) or "no such key" in str(exc).lower():
            return []
        raise
    return [
        ConsumerStats(
            stream=stream,
            group=group,
            name=text(row["name"]),
            pending=int(row["pending"]),
            idle_ms=int(row["idle"]),
            # Redis 7.2 added "inactive" (-1 when the consumer never read successfully).
            inactive_ms=None if row.get("inactive") in (None, -1) else int(row["inactive"]),
        )
        for row in rows
    ]


def _stream_stats(stream: str, length: int, group: str, infos: list[GroupInfo]) -> StreamStats:
    info = next((i for i in infos if i.name == group), None)
    if info is None:
        return StreamStats(stream, length, group, False, length, 0)
    return StreamStats(stream, length, group, True, info.lag, info.pending)


async def redis_now_ms(client: RedisClient) -> int:
    """The Redis server clock, the one the window scripts use."""
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def collect(
    client: RedisClient,
    keys: Keys,
    *,
    now_ms: int | None = None,
    max_sampled_windows: int = MAX_SAMPLED_WINDOWS,
) -> Stats:
    """Read every figure of one namespace; now_ms None: the Redis clock, read last."""
    inbound = keys.all_inbound()
    streams = [*inbound, *keys.all_outbound()]
    lengths = await _each(streams, client.xlen)
    infos = await _each(streams, lambda stream: group_infos(client, stream))
    pairs = [
        (stream, info.name) for stream, found in zip(streams, infos, strict=True) for info in found
    ]
    consumers = await _each(pairs, lambda pair: _consumers(client, *pair))
    scan = await scan_windows(client, keys, max_sampled_windows)
    dead_letters = int(await client.xlen(keys.dead()))
    failures = await recent_failures(client, keys)
    # Read after everything else, so no window read above opened after "now".
    now = await redis_now_ms(client) if now_ms is None else now_ms
    wanted = [PROCESSOR_GROUP] * len(inbound) + [SENDER_GROUP] * keys.shards
    stream_stats = [
        _stream_stats(stream, int(length), group, found)
        for stream, length, group, found in zip(streams, lengths, wanted, infos, strict=True)
    ]
    return Stats(
        namespace=keys.namespace,
        shards=keys.shards,
        redis_time_ms=now,
        inbound=_summed(keys.inbound(), stream_stats[: len(inbound)]),
        outbound=tuple(stream_stats[len(inbound) :]),
        groups=tuple(
            GroupStats(stream, i.name, i.consumers, i.pending, i.lag, i.last_delivered_id)
            for stream, found in zip(streams, infos, strict=True)
            for i in found
        ),
        consumers=tuple(c for found in consumers for c in found),
        windows=_window_stats(scan, now),
        dead_letters=dead_letters,
        delivery_failures=tuple(failures),
    )


def _summed(name: str, parts: list[StreamStats]) -> StreamStats:
    """The inbound stream's figures: its parts' summed when LULL_INBOUND_SHARDS (or a drain)
    splits it, named `<inbound>*` then (the groups list shows each part)."""
    if len(parts) == 1:
        return parts[0]
    lags = [part.lag for part in parts]
    return StreamStats(
        stream=f"{name}*",
        length=sum(part.length for part in parts),
        group=parts[0].group,
        group_exists=all(part.group_exists for part in parts),
        lag=None if None in lags else sum(lag or 0 for lag in lags),
        pending=sum(part.pending for part in parts),
    )


def _window_stats(scan: WindowScan, now_ms: int) -> WindowStats:
    """The scan's findings as of now_ms."""
    oldest, overdue = scan.earliest_open, scan.earliest_deadline
    is_overdue = overdue is not None and overdue[0] < now_ms
    return WindowStats(
        open_per_shard=scan.open_per_shard,
        # Clamped: on Redis Cluster "now" may come from a node whose clock is behind.
        oldest_age_ms=None if oldest is None else max(0, now_ms - int(oldest[0])),
        oldest_conversation=None if oldest is None else oldest[1],
        sampled=scan.sampled,
        approximate=scan.approximate,
        most_overdue_ms=now_ms - int(overdue[0]) if overdue and is_overdue else None,
        most_overdue_conversation=overdue[1] if overdue and is_overdue else None,
    )
