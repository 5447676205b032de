"""How the consumer settles entries: XACK the done ones, dead-letter then XACK the dead ones.

The dead letter is written before the ack, never after: a crash in between leaves the
entry pending (it is claimed again and, at worst, dead-lettered twice), never lost. When
the dead stream and the source stream share a hash slot both go in one MULTI/EXEC; when
they do not ({ns}:dead and {ns}:in do not), they are two commands, in that order, so every
command touches one slot and the code runs on Redis Cluster.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.crc import key_slot
from redis.typing import EncodableT, FieldT
from structlog.typing import FilteringBoundLogger

from common.consumer_metrics import ConsumerMetrics
from common.consumer_types import REDIS_FAILURES, ConsumerConfig, Entry
from common.redis_conn import RedisClient

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
        b"_deliveries": str(entry.deliveries),
        b"_dead_at": str(dead_at_ms),
    }
    return {**entry.fields, **{name: value.encode() for name, value in meta.items()}}


DeadHook = Callable[[Entry, str], Awaitable[None]]
"""Called with each dead-lettered entry and its reason, after its letter is written."""


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
                deliveries=entry.deliveries,
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
