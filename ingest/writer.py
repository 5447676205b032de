"""Appends webhook bodies to the inbound stream, the XADDs of concurrent requests pipelined.

Each request still waits for its own entry: the Coalescer sends the XADDs that arrive
while one pipeline is in flight together in the next one. A body of several conversations
on a split inbound stream is several XADDs (add_copies), sent in the same pipeline.
"""

from __future__ import annotations

from redis.typing import EncodableT, FieldT

from lull.common.coalesce import Coalescer
from lull.common.redis_conn import REDIS_FAILURES, RedisClient

Fields = dict[FieldT, EncodableT]

MAX_BATCH = 512


class StoreFailed(Exception):
    """Redis did not confirm the entry: the caller must not acknowledge it."""


class StreamWriter:
    """Appends entries to a stream (or several), many per round trip."""

    def __init__(self, client: RedisClient, stream: str) -> None:
        self._stream = stream
        self._batched = Coalescer(client, max_commands=MAX_BATCH)
        self._closing = False

    @property
    def flushes(self) -> int:
        """Pipelines sent so far."""
        return self._batched.flushes

    @property
    def last_batch_size(self) -> int:
        """Entries in the last pipeline."""
        return self._batched.last_batch_size

    async def stop(self) -> None:
        """Send what is queued, then stop taking entries."""
        self._closing = True
        await self._batched.close()

    async def add(self, fields: Fields) -> bytes:
        """XADD fields to the writer's stream; returns the entry id once Redis confirms,
        else raises StoreFailed."""
        [entry_id] = await self.add_copies([(self._stream, fields)])
        return entry_id

    async def add_copies(self, copies: list[tuple[str, Fields]]) -> list[bytes]:
        """XADD each (stream, fields); the entry ids once Redis confirms them all, else
        StoreFailed (some may have been written: the caller answers so that Meta retries,
        and the processor drops what comes twice by message id)."""
        if self._closing:
            raise StoreFailed("shutting down")
        commands = []
        for stream, fields in copies:
            command: list[EncodableT] = ["XADD", stream, "*"]
            for name, value in fields.items():
                command += (name, value)
            commands.append(tuple(command))
        try:
            results = await self._batched.execute(commands)
        except REDIS_FAILURES as exc:
            raise StoreFailed(f"{type(exc).__name__}: {exc}") from exc
        for result in results:
            if isinstance(result, Exception):
                raise StoreFailed(str(result))
        entry_ids: list[bytes] = results
        return entry_ids
