"""What the consumer loop does with a handler's answers, one place for all of them: ack,
hold for a local retry, dead-letter, or follow a Running entry until its outcome lands."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict

from structlog.typing import FilteringBoundLogger

from common.consumer_metrics import ConsumerMetrics
from common.consumer_retry import Key, LocalRetries, now_ms
from common.consumer_types import (
    BatchHandler,
    ConsumerConfig,
    Decided,
    Entry,
    Running,
    check_outcomes,
)
from common.consumer_writes import Settlement
from common.errors import Permanent, blames_the_entry

_Settled = tuple[Entry, Decided, float]
"""An entry, its final outcome, and when Redis last reset its idle time for us (ms)."""


def backoff_ms(config: ConsumerConfig, attempt: int) -> int:
    """Capped exponential backoff for the attempt-th consecutive failure."""
    doubled = config.error_backoff_ms * 2 ** min(attempt - 1, 30)
    return int(min(doubled, config.error_backoff_max_ms))


class Decider:
    """Calls the handler and carries out its outcomes on the consumer's retries and writes."""

    def __init__(
        self,
        handler: BatchHandler,
        *,
        config: ConsumerConfig,
        retries: LocalRetries,
        writes: Settlement,
        metrics: ConsumerMetrics,
        log: FilteringBoundLogger,
    ) -> None:
        self._handler = handler
        self._config = config
        self._retries = retries
        self._writes = writes
        self._metrics = metrics
        self._entries = metrics.entries
        self._group = config.group
        self._log = log
        self._landed: list[tuple[Key, asyncio.Future[Decided]]] = []
        """Running outcomes that resolved since the last settle_landed(), to settle."""

    @property
    def landed(self) -> bool:
        """True when Running outcomes resolved and wait to be settled."""
        return bool(self._landed)

    async def handle(
        self,
        stream: str,
        entries: list[Entry],
        *,
        touched_ms: float,
        failures: int = 0,
    ) -> None:
        """Call the handler and settle what it says; if it raises, hold each entry alone."""
        try:
            outcomes = await self._handler(stream, entries)
            check_outcomes(entries, outcomes)
        except Exception as exc:  # any failure is decided here: retry later, or dead letter
            await self._failed(stream, entries, exc, touched_ms=touched_ms, failures=failures)
            return
        settled: list[_Settled] = []
        for entry, outcome in zip(entries, outcomes, strict=True):
            if isinstance(outcome, Running):
                self._follow(entry, outcome.done, touched_ms=touched_ms, failures=failures)
            else:
                settled.append((entry, outcome, touched_ms))
        await self._settle(stream, settled)

    async def _settle(self, stream: str, settled: list[_Settled]) -> None:
        """Ack the done, dead-letter the permanent, hold the rest for a local retry."""
        done: list[Entry] = []
        dead: list[tuple[Entry, str]] = []
        for entry, outcome, touched_ms in settled:
            if outcome is None:
                done.append(entry)
            elif isinstance(outcome, Permanent):
                dead.append((entry, outcome.reason))
            else:
                self._retries.hold(
                    entry,
                    due_ms=now_ms() + outcome.delay_ms,
                    touched_ms=touched_ms,
                    failures=0,
                )
                self._entries.labels(self._group, "retried").inc()
        await self._writes.finish(stream, done=done, dead=dead, reason_kind="permanent")

    async def _failed(
        self,
        stream: str,
        entries: list[Entry],
        exc: BaseException,
        *,
        touched_ms: float,
        failures: int,
    ) -> None:
        """The handler raised for entries: hold each for a retry alone, or dead-letter a
        lone entry that keeps failing in a way that blames it."""
        self._metrics.handler_errors.labels(self._group).inc()
        poison = len(entries) == 1 and failures + 1 >= self._config.max_deliveries
        if poison and blames_the_entry(exc):
            reason = f"handler raised {failures + 1} times: {type(exc).__name__}: {exc}"
            await self._writes.finish(
                stream, done=[], dead=[(entries[0], reason)], reason_kind="handler_error"
            )
            return
        delay_ms = backoff_ms(self._config, failures + 1)
        # The traceback once per failed batch; retries of its entries say only the error.
        self._log.error(
            "handler failed, retrying its entries",
            stream=stream,
            entries=len(entries),
            attempt=failures + 1,
            retry_in_ms=delay_ms,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc if failures == 0 else False,
        )
        for entry in entries:
            self._retries.hold(
                entry,
                due_ms=now_ms() + delay_ms,
                touched_ms=touched_ms,
                failures=failures + 1,
            )
        self._entries.labels(self._group, "retried").inc(len(entries))

    def _follow(
        self, entry: Entry, done: asyncio.Future[Decided], *, touched_ms: float, failures: int
    ) -> None:
        """Hold a Running entry (never due, touched as usual) until its outcome lands."""
        self._retries.hold(entry, due_ms=math.inf, touched_ms=touched_ms, failures=failures)
        self._entries.labels(self._group, "running").inc()
        key = (entry.stream, entry.id)
        done.add_done_callback(lambda future: self._landed.append((key, future)))

    async def settle_landed(self) -> None:
        """Settle the Running outcomes that resolved since the last step."""
        landed, self._landed = self._landed, []
        settled: dict[str, list[_Settled]] = defaultdict(list)
        for key, future in landed:
            held = self._retries.take(key)
            if held is None or future.cancelled():
                # Released at a stop, or taken over meanwhile; or given up by the handler
                # (its own stop): it stays pending, for a claim pass to find.
                continue
            entry = held.entry
            exc = future.exception()
            if exc is not None:
                await self._failed(
                    entry.stream, [entry], exc, touched_ms=held.touched_ms, failures=held.failures
                )
                continue
            settled[entry.stream].append((entry, future.result(), held.touched_ms))
        for stream, triples in settled.items():
            await self._settle(stream, triples)
