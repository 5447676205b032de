"""Watches every batch the processors emit, through a consumer group of its own.

The senders' claim pass trims the outbound streams below what every group acknowledged, so
a group of our own is the only way to see each emitted entry: the stream keeps an entry
until this observer has read and acknowledged it. After a Redis failure the observer first
re-reads its own pending entries (a read whose reply was lost stays pending to it).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson

from lull.common.redis_conn import REDIS_FAILURES, connect
from lull.common.store.keys import Keys
from lull.common.store.streams import ensure_group, text
from tests.chaos.drain import left_in_group

GROUP = "chaos-observer"
CONSUMER = "observer"
READ_COUNT = 500
BLOCK_MS = 200
BACKOFF_S = 0.2


@dataclass(frozen=True, slots=True)
class Emitted:
    """One outbound entry: a batch as the processor emitted it."""

    stream: str
    entry_id: str
    batch_id: str
    seq: int
    conversation: str
    mids: tuple[str, ...]
    first_received_ms: int
    """The earliest ingest receive time of its messages (wall clock, ms)."""
    closed_at_ms: int
    paused: bool = False
    """Stamped by the close: a human had the conversation; the bot must never get it."""
    api: bool = False
    """A send API message (no user messages; never reaches the bot)."""


def emitted_of(stream: str, entry_id: str, fields: dict[bytes, bytes]) -> Emitted:
    """Decode an outbound entry."""
    batch: dict[str, Any] = orjson.loads(fields[b"batch"])
    messages = batch["messages"]
    closed_at_ms = int(batch["closed_at"])
    return Emitted(
        stream=stream,
        entry_id=entry_id,
        batch_id=batch["batch_id"],
        seq=batch["seq"],
        conversation=batch["conversation"],
        mids=tuple(m["mid"] for m in messages),
        first_received_ms=min((int(m["received_at"]) for m in messages), default=closed_at_ms),
        closed_at_ms=closed_at_ms,
        paused=batch.get("paused") is True,
        api="api" in batch,
    )


class Observer:
    """`await attach()` before any batch is emitted, run() as a task, stop() at the end."""

    def __init__(self, redis_url: str, keys: Keys) -> None:
        self.emitted: dict[tuple[str, str], Emitted] = {}
        """Every outbound entry seen, by (stream, entry id)."""
        self.errors = 0
        self._client = connect(redis_url, timeout_s=5)
        self._streams = keys.all_outbound()
        self._stop = asyncio.Event()

    async def attach(self) -> None:
        """Create the observer's group on every outbound stream, from the beginning."""
        for stream in self._streams:
            await ensure_group(self._client, stream, GROUP)

    async def run(self) -> None:
        """Read and record until stop(); Redis failures back off and re-read our pending."""
        recheck = True
        while not self._stop.is_set():
            try:
                if recheck:
                    await self._read_pending()
                    recheck = False
                await self._read(">", BLOCK_MS)
            except REDIS_FAILURES:
                self.errors += 1
                recheck = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), BACKOFF_S)

    async def stop(self) -> None:
        """End run() within one block."""
        self._stop.set()

    async def close(self) -> None:
        """Close the Redis client (after run() ended)."""
        await self._client.aclose()

    async def caught_up(self) -> bool:
        """Nothing pending to us and nothing unread by our group, on every stream."""
        for stream in self._streams:
            if await left_in_group(self._client, stream, GROUP):
                return False
        return True

    async def _read_pending(self) -> None:
        while await self._read("0", None):
            pass

    async def _read(self, start: str, block_ms: int | None) -> int:
        reply: Any = await self._client.xreadgroup(
            GROUP, CONSUMER, dict.fromkeys(self._streams, start), count=READ_COUNT, block=block_ms
        )
        seen = 0
        for raw_stream, rows in reply or []:
            stream = text(raw_stream)
            ids = []
            for raw_id, fields in rows:
                entry_id = text(raw_id)
                ids.append(entry_id)
                if fields:  # a pending entry deleted from the stream reads back without fields
                    self.emitted.setdefault(
                        (stream, entry_id), emitted_of(stream, entry_id, fields)
                    )
            if ids:
                await self._client.xack(stream, GROUP, *ids)
                seen += len(ids)
        return seen
