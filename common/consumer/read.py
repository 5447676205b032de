"""How the consumer spreads its XREADGROUP over hash slots: one read on one Redis, one per
slot on a Redis Cluster.

A cluster refuses a command whose keys live in different slots (CROSSSLOT), and every
shard's outbound stream has a slot of its own. So on a cluster each slot's streams get a
read of their own; the reads run concurrently, each with the step's block time, and each
hands what it read to the handler as soon as it answers, then reads again until the step's
deadline: a quiet shard's blocked read never holds back a busy one's entries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from lull.common.clock import monotonic_ms
from lull.common.consumer.config import ConsumerConfig
from lull.common.consumer.handler import Entry
from lull.common.redis_conn import REDIS_FAILURES, RedisClient
from lull.common.store.streams import text


class HandleRead(Protocol):
    """What the consumer does with the entries of one stream that one read returned."""

    async def __call__(self, stream: str, entries: list[Entry], *, touched_ms: float) -> None:
        """Handle entries and settle their outcomes; touched_ms: when the read answered."""


class Reader:
    """XREADGROUP for one consumer: hands what it reads to handle, failures to failed."""

    def __init__(
        self,
        client: RedisClient,
        config: ConsumerConfig,
        handle: HandleRead,
        failed: Callable[[BaseException], None],
    ) -> None:
        self._client = client
        self._config = config
        self._handle = handle
        self._failed = failed
        self._sets = read_sets(client, config.streams)

    async def read(self, block_ms: int | None, *, keep_reading: Callable[[], bool]) -> int | None:
        """Read (block_ms None: without blocking) and handle; entries read, None on failure.

        On a cluster, one reader per slot until block_ms has passed; keep_reading() False
        (a stop, or the local-retry cap) ends each reader after its current read.
        """
        if len(self._sets) == 1:
            return await self._read_once(self._sets[0], block_ms)
        deadline_ms = monotonic_ms() + (block_ms or 0)

        async def reader(streams: list[str]) -> int | None:
            total, wait_ms = 0, block_ms
            while True:
                read = await self._read_once(streams, wait_ms)
                if read is None:
                    return None
                total += read
                left_ms = int(deadline_ms - monotonic_ms())
                # An empty read blocked until the deadline; a non-blocking pass reads once.
                if read == 0 or block_ms is None or left_ms < 1 or not keep_reading():
                    return total
                wait_ms = left_ms

        counts = await asyncio.gather(*(reader(streams) for streams in self._sets))
        if any(count is None for count in counts):
            return None
        return sum(count or 0 for count in counts)

    async def _read_once(self, streams: list[str], block_ms: int | None) -> int | None:
        try:
            reply: Any = await self._client.xreadgroup(
                self._config.group,
                self._config.consumer,
                dict.fromkeys(streams, ">"),
                count=self._config.read_count,
                block=block_ms,
            )
        except REDIS_FAILURES as exc:
            self._failed(exc)
            return None
        received_ms = monotonic_ms()
        total = 0
        for raw_stream, rows in reply or []:
            stream = text(raw_stream)
            entries = [Entry(stream, text(i), fields, 1) for i, fields in rows]
            total += len(entries)
            await self._handle(stream, entries, touched_ms=received_ms)
        return total


def read_sets(client: RedisClient, streams: list[str]) -> list[list[str]]:
    """The streams each XREADGROUP names: all of them on one Redis, one slot's on a cluster."""
    if not isinstance(client, RedisCluster):
        return [list(streams)]
    by_slot: dict[int, list[str]] = {}
    for stream in streams:
        by_slot.setdefault(key_slot(stream.encode()), []).append(stream)
    return list(by_slot.values())
