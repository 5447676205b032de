"""The closer: sleeps until the earliest window deadline, then closes what is due.

Every replica runs one. It never polls on a fixed interval: it sleeps until the earliest
deadline it saw in Redis, and a local apply that creates an earlier deadline wakes it.
A window opened by another replica that died before its deadline is still closed by the
next wake-up, at the latest after MAX_SLEEP_MS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog

from lull.common.backoff import backoff_ms
from lull.common.redis_conn import REDIS_FAILURES
from lull.common.store.windows import Closed, CloseResult, WindowStore
from lull.processor.metrics import ProcessorMetrics

log = structlog.get_logger("lull.processor.closer")

CLOSE_BATCH = 100
MAX_SLEEP_MS = 1000
FIRST_BACKOFF_MS = 100
MAX_BACKOFF_MS = 5000


class Closer:
    """Closes due windows of every shard on time."""

    def __init__(
        self,
        store: WindowStore,
        shards: int,
        grace_ms: int,
        metrics: ProcessorMetrics,
        max_sleep_ms: int = MAX_SLEEP_MS,
    ) -> None:
        self._store = store
        # The safety wake-up: windows of a replica that died are closed at least this often.
        self._max_sleep_ms = max_sleep_ms
        self._shards = shards
        self._grace_ms = grace_ms
        self._metrics = metrics
        self._wakeup = asyncio.Event()
        # When the closer will next wake, on the Redis clock (ms); None when awake.
        self._wake_at_ms: float | None = None
        self._asleep = asyncio.Event()
        # The earliest deadline notified while awake: a close pass already under way may
        # have read its shard before that window existed, so the next sleep must honour it.
        self._notified_ms: int | None = None

    def notify(self, deadline_ms: int) -> None:
        """A local apply set this deadline: wake early if it is before the planned wake-up."""
        self._metrics.window_overdue.learned(deadline_ms)
        if self._wake_at_ms is None:
            if self._notified_ms is None or deadline_ms < self._notified_ms:
                self._notified_ms = deadline_ms
        elif deadline_ms + self._grace_ms < self._wake_at_ms:
            self._wakeup.set()

    async def close_due(self, *, everything: bool = False) -> tuple[int, int | None, int]:
        """Close what is due on every shard: (batches emitted, next deadline ms, redis now)."""
        emitted, next_deadline, now_ms, open_windows = 0, None, 0, 0
        for shard in range(self._shards):
            while True:
                result = await self._store.close_due(shard, CLOSE_BATCH, everything=everything)
                emitted += self._record(result)
                if len(result.closed) < CLOSE_BATCH:
                    break
            now_ms = result.now_ms
            open_windows += result.open_windows
            if result.next_deadline_ms is not None and (
                next_deadline is None or result.next_deadline_ms < next_deadline
            ):
                next_deadline = result.next_deadline_ms
        self._metrics.windows_open.set(open_windows)
        self._metrics.window_overdue.looked(now_ms, next_deadline)
        return emitted, next_deadline, now_ms

    def _record(self, result: CloseResult) -> int:
        return self.report(result.now_ms, result.closed)

    def report(self, now_ms: int, windows: Sequence[Closed]) -> int:
        """Count and log closed windows (by this closer, or by an apply that found one full);
        the number of batches emitted."""
        metrics, emitted = self._metrics, 0
        for closed in windows:
            if closed.messages == 0:
                metrics.emptied.inc()
                continue
            emitted += 1
            metrics.batches.labels(closed.reason).inc()
            if closed.paused:
                metrics.batches_paused.inc()
            metrics.batch_messages.observe(closed.messages)
            lateness_ms = max(0, now_ms - closed.deadline_ms)
            metrics.close_lateness_ms.observe(lateness_ms)
            # One line per unit of work: an operator follows a turn from here to the sender.
            log.info(
                "batch emitted",
                conversation=closed.conversation,
                seq=closed.seq,
                messages=closed.messages,
                reason=closed.reason,
                paused=closed.paused,
                lateness_ms=lateness_ms,
            )
        return emitted

    async def run(self, stop: asyncio.Event) -> None:
        """Close windows on time until stop is set; Redis failures back off, never end it."""
        failures = 0
        while not stop.is_set():
            self._notified_ms = None
            try:
                _, next_deadline, now_ms = await self.close_due()
            except REDIS_FAILURES as exc:
                # Windows wait in Redis; closing resumes when it answers again.
                failures += 1
                delay_ms = backoff_ms(failures, FIRST_BACKOFF_MS, MAX_BACKOFF_MS)
                log.warning("closing failed, retrying", error=str(exc), backoff_ms=delay_ms)
                await self._sleep(delay_ms, 0, stop)
                continue
            failures = 0
            sleep_ms = float(self._max_sleep_ms)
            for deadline_ms in (next_deadline, self._notified_ms):
                if deadline_ms is not None:
                    sleep_ms = min(sleep_ms, max(0.0, deadline_ms + self._grace_ms - now_ms))
            await self._sleep(sleep_ms, now_ms, stop)

    async def _sleep(self, sleep_ms: float, now_ms: int, stop: asyncio.Event) -> None:
        self._wake_at_ms = now_ms + sleep_ms
        self._wakeup.clear()
        stopper = asyncio.ensure_future(stop.wait())
        waker = asyncio.ensure_future(self._wakeup.wait())
        self._asleep.set()
        try:
            # FIRST_COMPLETED: asyncio.wait's default waits for both, so a wake-up (or a
            # stop) used to count only once the sleep timed out.
            await asyncio.wait(
                [stopper, waker], timeout=sleep_ms / 1000, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._asleep.clear()
            self._wake_at_ms = None
            for task in (stopper, waker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def asleep(self) -> None:
        """Return once the closer sleeps (tests: wake it deterministically)."""
        await self._asleep.wait()

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Close windows as they fall due until none is open (tests, shutdown drills)."""
        emitted = 0
        async with asyncio.timeout(timeout_s):
            while True:
                closed, next_deadline, now_ms = await self.close_due()
                emitted += closed
                if next_deadline is None:
                    return emitted
                wait_ms = max(0, next_deadline + self._grace_ms - now_ms)
                await asyncio.sleep(wait_ms / 1000)
