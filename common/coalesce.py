"""Commands of concurrent callers, sent together: one pipeline per round trip.

An awaited redis-py command costs ~100 µs of Python, a pipelined one ~20 µs. The flush
policy: a caller's commands leave in the next turn of the event loop, with those of every
caller of this turn, as long as fewer than max_in_flight pipelines are in flight; when that
many are, callers queue and the queue leaves whole as soon as one comes back. So a lone
caller never waits for company, and under load the pipelines grow instead of their number.

0.2 kept one pipeline in flight and yielded a loop turn before each: under open-loop load a
request that came while a pipeline was in flight waited for all of it and then its own, and
the ingest tail (p99) was 6x the naive handler's (docs/performance.md, Ingest).
"""

from __future__ import annotations

import asyncio
from typing import Any

from lull.common.redis_conn import RedisClient

Command = tuple[Any, ...]
_Call = tuple[list[Command], "asyncio.Future[list[Any]]"]

MAX_IN_FLIGHT = 2
"""Pipelines in flight at once (each on a connection of its own from the client's pool)."""


class Coalescer:
    """Runs lists of commands for many concurrent callers in shared pipelines."""

    def __init__(
        self, client: RedisClient, max_commands: int = 1000, max_in_flight: int = MAX_IN_FLIGHT
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight {max_in_flight} is below 1")
        self._client = client
        self._max_commands = max_commands
        self._max_in_flight = max_in_flight
        self._pending: list[_Call] = []
        self._flushing: set[asyncio.Task[None]] = set()
        self._starting = False
        self._closing = False
        self.flushes = 0
        """Pipelines sent so far."""
        self.last_batch_size = 0
        """Callers served by the last pipeline."""

    @property
    def in_flight(self) -> int:
        """Pipelines sent and not back yet."""
        return len(self._flushing)

    async def execute(self, commands: list[Command]) -> list[Any]:
        """The replies of commands, in order; a failed command's reply is its exception.

        Raises what the whole pipeline raised (Redis down, timeout) for every caller in it.
        """
        if self._closing:
            raise RuntimeError("coalescer is closed")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((commands, future))
        self._start()
        return await future

    async def close(self) -> None:
        """Send what is queued, then wait for every pipeline in flight."""
        self._closing = True
        while self._flushing:
            await asyncio.wait(set(self._flushing))

    def _start(self) -> None:
        """Start a flush if one may be in flight and none is about to take the queue."""
        if self._starting or not self._pending or len(self._flushing) >= self._max_in_flight:
            return
        # The task's first step runs in the next loop turn: every caller of this turn (one
        # read of many sockets) is queued by then, and leaves in that one pipeline.
        self._starting = True
        task = asyncio.get_running_loop().create_task(self._flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        # What queued while every pipeline was in flight leaves now, all of it together.
        self._flushing.discard(task)
        self._start()

    def _take(self) -> list[_Call]:
        size, taken = 0, 0
        for commands, _ in self._pending:
            if taken and size + len(commands) > self._max_commands:
                break
            size += len(commands)
            taken += 1
        batch = self._pending[:taken]
        del self._pending[:taken]
        return batch

    async def _flush(self) -> None:
        self._starting = False
        batch = self._take()
        # More than max_commands queued: the rest may leave at once in another pipeline.
        self._start()
        if not batch:
            return
        self.flushes += 1
        self.last_batch_size = len(batch)
        pipe = self._client.pipeline(transaction=False)
        for commands, _ in batch:
            for command in commands:
                pipe.execute_command(*command)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        at = 0
        for commands, future in batch:
            # A caller that gave up (cancelled) has its future done already.
            if not future.done():
                future.set_result(results[at : at + len(commands)])
            at += len(commands)
