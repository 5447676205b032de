"""Commands of concurrent callers, sent together: one pipeline per round trip.

An awaited redis-py command costs ~100 µs of Python, a pipelined one ~20 µs. Callers that
arrive while a pipeline is in flight share the next one; each still waits only for its
own replies, so nothing is delayed by more than one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis

Command = tuple[Any, ...]


class Coalescer:
    """Runs lists of commands for many concurrent callers in shared pipelines."""

    def __init__(self, client: aioredis.Redis, max_commands: int = 1000) -> None:
        self._client = client
        self._max_commands = max_commands
        self._pending: list[tuple[list[Command], asyncio.Future[list[Any]]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def execute(self, commands: list[Command]) -> list[Any]:
        """The replies of commands, in order; a failed command's reply is its exception."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="redis-coalescer")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((commands, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Stop the flushing task (callers still waiting get CancelledError)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._pending:
            future.cancel()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0)  # let callers of this loop turn join the pipeline
            while self._pending:
                batch, size = [], 0
                while self._pending and size < self._max_commands:
                    item = self._pending.pop(0)
                    batch.append(item)
                    size += len(item[0])
                await self._flush(batch)

    async def _flush(self, batch: list[tuple[list[Command], asyncio.Future[list[Any]]]]) -> None:
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
            if not future.done():
                future.set_result(results[at : at + len(commands)])
            at += len(commands)
