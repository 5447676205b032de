"""Waiting for the stack to finish its work: nothing unread, pending or open in Redis."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from lull.common.redis_conn import REDIS_FAILURES
from lull.common.store.keys import PROCESSOR_GROUP, SENDER_GROUP, Keys
from lull.common.store.streams import group_info, text

POLL_S = 0.2
# Idle must hold this long: a frozen replica just thawed may still hold work in memory.
STABLE_S = 1.0


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is left to do, summed over the streams and shards."""

    inbound: int
    open_windows: int
    outbound: int

    @property
    def idle(self) -> bool:
        """True when nothing is left."""
        return not (self.inbound or self.open_windows or self.outbound)


async def backlog(client: aioredis.Redis, keys: Keys) -> Backlog:
    """Pending plus undelivered entries of each group, and the windows still open."""
    inbound = await left_in_group(client, keys.inbound(), PROCESSOR_GROUP)
    windows = 0
    for shard in range(keys.shards):
        windows += int(await client.zcard(keys.due(shard)))
    outbound = 0
    for stream in keys.all_outbound():
        outbound += await left_in_group(client, stream, SENDER_GROUP)
    return Backlog(inbound, windows, outbound)


async def left_in_group(client: aioredis.Redis, stream: str, group: str) -> int:
    """Entries of stream the group has pending or not read yet."""
    info = await group_info(client, stream, group)
    if info is None:
        # The group is created by the first replica of it; a stream with entries and no
        # group yet is all backlog.
        return int(await client.xlen(stream))
    last_id = text((await client.xinfo_stream(stream))["last-generated-id"])
    undelivered = 0
    if info.last_delivered_id != last_id:
        # Redis cannot always count the lag (after deletions); something is unread anyway.
        undelivered = max(info.lag or 0, 1)
    return info.pending + undelivered


async def wait_drained(client: aioredis.Redis, keys: Keys, timeout_s: float) -> Backlog:
    """Poll until the backlog stays empty for STABLE_S; returns the last backlog seen."""
    deadline = time.monotonic() + timeout_s
    idle_since: float | None = None
    last = Backlog(-1, -1, -1)
    while time.monotonic() < deadline:
        try:
            last = await backlog(client, keys)
        except REDIS_FAILURES:
            idle_since = None
        else:
            if not last.idle:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= STABLE_S:
                return last
        # Polling other processes' progress, bounded by the deadline above.
        await asyncio.sleep(POLL_S)
    return last
