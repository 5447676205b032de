"""The sender's handler for the consumer loop: the batches of one read, delivered at once,
and a slow one left running so it does not hold up the reads after it.

The loop reads again only when a read's outcomes are in. A bot that takes seconds (an AI
call) would make every conversation read after its batch wait for it. So a read waits at
most STEP_BUDGET_S: deliveries that finish by then (the usual case) are settled with the
read; the others are handed back as Running and go on as tasks, while the loop keeps their
entries claimed, reads on, and settles each when its task ends. The batch itself is marked
delivered and acknowledged by the task's own finish step, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from lull.common.consumer import Decided, Entry, Outcome, RetryLater, Running
from lull.common.redis_conn import REDIS_FAILURES

# How long a read waits for its deliveries before leaving the slow ones running: a prompt
# bot and its sends finish within it and settle with the read; a slow bot delays the next
# read by no more than this. (make bench, 1 in 20 bots taking 2 s: the prompt ones' replies
# p99 19 ms at 20 ms, 52 ms at 50 ms, 215 ms at 200 ms; replies/s alike within the noise.)
STEP_BUDGET_S = 0.02
REDIS_RETRY_MS = 500

log = structlog.get_logger("lull.sender")


class ConcurrentDeliveries:
    """Runs deliver(entry) per entry under `concurrency` slots; close() ends what runs."""

    def __init__(self, deliver: Callable[[Entry], Awaitable[Decided]], concurrency: int) -> None:
        self._deliver = deliver
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[Decided]] = set()

    @property
    def running(self) -> int:
        """ConcurrentDeliveries started and not finished (those waiting for a slot included)."""
        return len(self._running)

    async def __call__(self, stream: str, entries: list[Entry], /) -> list[Outcome]:
        # Conversations are independent; a batch of the same conversation that comes too
        # early waits for its predecessor through RetryLater, not by blocking this read.
        tasks = [asyncio.create_task(self._one(entry)) for entry in entries]
        for task in tasks:
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        await asyncio.wait(tasks, timeout=STEP_BUDGET_S)
        # A task that raised is handed back as Running too: the loop decides for its entry
        # alone, while the others of this read are settled as they ended.
        return [_outcome(task) for task in tasks]

    async def close(self, timeout_s: float) -> None:
        """Let running deliveries finish for up to timeout_s, then cancel the rest: their
        entries stay pending and another replica claims them after LULL_CLAIM_IDLE_MS."""
        if not self._running:
            return
        _done, left = await asyncio.wait(set(self._running), timeout=timeout_s)
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
            log.warning("deliveries cancelled at stop", cancelled=len(left))

    async def _one(self, entry: Entry) -> Decided:
        async with self._slots:
            try:
                return await self._deliver(entry)
            except REDIS_FAILURES as exc:
                # Decided per entry, never for the whole read: the other entries of this
                # read may have been sent already and must be settled as such.
                log.warning("batch postponed: redis failed", id=entry.id, error=str(exc))
                return RetryLater(REDIS_RETRY_MS, f"redis: {type(exc).__name__}")


def _outcome(task: asyncio.Task[Decided]) -> Outcome:
    if task.done() and not task.cancelled() and task.exception() is None:
        return task.result()
    return Running(task)
