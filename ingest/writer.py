"""Appends webhook bodies to the inbound stream, the XADDs of concurrent requests pipelined.

Each request still waits for its own entry: the Coalescer sends the XADDs that arrive
while one pipeline is in flight together in the next one.
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
    """Appends entries to one stream, many per round trip."""

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
        """XADD fields; returns the entry id once Redis confirms, else raises StoreFailed."""
        if self._closing:
            raise StoreFailed("shutting down")
        command: list[EncodableT] = ["XADD", self._stream, "*"]
        for name, value in fields.items():
            command += (name, value)
        try:
            [result] = await self._batched.execute([tuple(command)])
        except REDIS_FAILURES as exc:
            raise StoreFailed(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(result, Exception):
            raise StoreFailed(str(result))
        entry_id: bytes = result
        return entry_id
