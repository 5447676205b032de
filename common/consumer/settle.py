"""What an outcome does to its entry, one place for all of them: ack it, hold it for a local
retry, dead-letter it, or follow a Running entry until its outcome lands.

The dead letter is written before the ack, never after: a crash in between leaves the
entry pending (it is claimed again and, at worst, dead-lettered twice), never lost. When
the dead stream and the source stream share a hash slot both go in one MULTI/EXEC; when
they do not ({ns}:dead and {ns}:in do not), they are two commands, in that order, so every
command touches one slot and the code runs on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.crc import key_slot
from redis.typing import EncodableT, FieldT
from structlog.typing import FilteringBoundLogger

from lull.common.backoff import backoff_ms
from lull.common.clock import monotonic_ms
from lull.common.consumer.config import ConsumerConfig
from lull.common.consumer.handler import (
    Decided,
    Entry,
    EntryHandler,
    Permanent,
    Running,
    blames_the_entry,
    check_outcomes,
)
from lull.common.consumer.metrics import ConsumerMetrics
from lull.common.consumer.retries import Key, LocalRetries
from lull.common.redis_conn import REDIS_FAILURES, RedisClient

Fields = dict[FieldT, EncodableT]


def dead_letter_fields(
    entry: Entry, *, group: str, consumer: str, reason: str, dead_at_ms: int
) -> dict[bytes, bytes]:
    """The entry's own fields verbatim, plus `_source`, `_id`, `_group`, `_consumer`,
    `_reason`, `_deliveries` and `_dead_at` (ms since the epoch); ours win a name clash."""
    meta = {
        b"_source": entry.stream,
        b"_id": entry.id,
        b"_group": group,
        b"_consumer": consumer,
        b"_reason": reason,
        b"_deliveries": str(entry.times_delivered),
        b"_dead_at": str(dead_at_ms),
    }
    return {**entry.fields, **{name: value.encode() for name, value in meta.items()}}


DeadHook = Callable[[Entry, str], Awaitable[None]]
"""Called with each dead-lettered entry and its reason after its letter is written."""


class Settlement:
    """Writes the outcome of handled entries of one consumer."""

    def __init__(
        self,
        client: RedisClient,
        config: ConsumerConfig,
        metrics: ConsumerMetrics,
        log: FilteringBoundLogger,
        on_dead: DeadHook | None = None,
    ) -> None:
        self._client = client
        self._on_dead = on_dead
        self._config = config
        self._metrics = metrics
        self._log = log
        dead_slot = key_slot(config.dead_stream.encode())
        self._same_slot = {s: key_slot(s.encode()) == dead_slot for s in config.streams}

    async def finish(
        self,
        stream: str,
        *,
        done: Sequence[Entry] = (),
        dead: Sequence[tuple[Entry, str]] = (),
        reason_kind: str = "permanent",
        gone: Sequence[str] = (),
    ) -> bool:
        """Ack done and gone ids, dead-letter then ack dead ones; False if Redis failed.

        Whatever is not acked stays pending and comes back through the claim pass.
        """
        if not (done or dead or gone):
            return True
        letters = [self._letter(entry, reason) for entry, reason in dead]
        ack_ids = [entry.id for entry in done] + list(gone)
        try:
            if letters and self._same_slot[stream]:
                written = await self._dead_and_ack_atomic(stream, letters, dead, ack_ids)
                await self._run_hook(written)
            else:
                written = await self._dead_letters(letters, dead) if letters else []
                # Between the letter and the ack: the owner's own bookkeeping for a dead
                # entry (the sender advances the conversation's seq) is never skipped.
                await self._run_hook(written)
                ids = ack_ids + [entry.id for entry, _ in written]
                if ids:
                    await self._client.xack(stream, self._config.group, *ids)
        except REDIS_FAILURES as exc:
            self._failed("ack", exc, stream, len(ack_ids) + len(dead))
            return False
        group = self._config.group
        self._metrics.entries.labels(group, "acked").inc(len(done))
        self._metrics.entries.labels(group, "gone").inc(len(gone))
        self._metrics.entries.labels(group, "dead").inc(len(written))
        self._metrics.dead_letters.labels(group, reason_kind).inc(len(written))
        for entry, reason in written:
            self._log.warning(
                "dead-lettered entry",
                stream=stream,
                id=entry.id,
                times_delivered=entry.times_delivered,
                reason=reason,
            )
        return len(written) == len(dead)

    async def _run_hook(self, written: Sequence[tuple[Entry, str]]) -> None:
        if self._on_dead is not None:
            for entry, reason in written:
                await self._on_dead(entry, reason)

    async def _dead_letters(
        self, letters: list[Fields], dead: Sequence[tuple[Entry, str]]
    ) -> list[tuple[Entry, str]]:
        """XADD each letter; returns the dead entries whose letter Redis confirmed."""
        pipe = self._client.pipeline(transaction=False)
        for fields in letters:
            pipe.xadd(self._config.dead_stream, fields)
        try:
            results: list[Any] = await pipe.execute(raise_on_error=False)
        except REDIS_FAILURES as exc:
            self._failed("dead letter", exc, self._config.dead_stream, len(letters))
            return []
        written = []
        for item, result in zip(dead, results, strict=True):
            if isinstance(result, Exception):
                self._failed("dead letter", result, self._config.dead_stream, 1)
            else:
                written.append(item)
        return written

    async def _dead_and_ack_atomic(
        self,
        stream: str,
        letters: list[Fields],
        dead: Sequence[tuple[Entry, str]],
        ack_ids: list[str],
    ) -> list[tuple[Entry, str]]:
        pipe = self._client.pipeline(transaction=True)
        for fields in letters:
            pipe.xadd(self._config.dead_stream, fields)
        pipe.xack(stream, self._config.group, *ack_ids, *(entry.id for entry, _ in dead))
        results: list[Any] = await pipe.execute(raise_on_error=False)
        for (entry, _), result in zip(dead, results, strict=False):
            if isinstance(result, Exception):
                # Only a wrong key type fails inside EXEC (checked at start); the ack ran.
                self._log.error("dead letter lost after ack", stream=stream, id=entry.id)
        if isinstance(results[-1], Exception):
            raise results[-1]
        return list(dead)

    def _letter(self, entry: Entry, reason: str) -> Fields:
        fields = dead_letter_fields(
            entry,
            group=self._config.group,
            consumer=self._config.consumer,
            reason=reason,
            dead_at_ms=int(time.time() * 1000),
        )
        # Widened for xadd's parameter type (dict is invariant in its key type).
        return {name: value for name, value in fields.items()}

    def _failed(self, op: str, exc: BaseException, stream: str, entries: int) -> None:
        self._metrics.redis_errors.labels(self._config.group, op).inc()
        self._log.warning(
            "redis command failed; entries stay pending",
            op=op,
            stream=stream,
            entries=entries,
            error=f"{type(exc).__name__}: {exc}",
        )


_Settled = tuple[Entry, Decided, float]
"""An entry, its final outcome, and when Redis last reset its idle time for us (ms)."""


def failure_backoff_ms(config: ConsumerConfig, attempt: int) -> int:
    """The loop's backoff after the attempt-th consecutive failure."""
    return backoff_ms(attempt, config.error_backoff_ms, config.error_backoff_max_ms)


class Decider:
    """Calls the handler and carries out its outcomes on the consumer's retries and writes."""

    def __init__(
        self,
        handler: EntryHandler,
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
                    due_ms=monotonic_ms() + outcome.delay_ms,
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
        delay_ms = failure_backoff_ms(self._config, failures + 1)
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
                due_ms=monotonic_ms() + delay_ms,
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
