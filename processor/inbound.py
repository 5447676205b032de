"""The processor's handler for raw webhook entries: parse, apply to windows, report outcomes."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from common.consumer import Entry, Outcome
from common.errors import Permanent
from common.events import Event, MalformedBody
from processor.closer import Closer
from processor.metrics import ProcessorMetrics
from processor.platforms import parse
from processor.windows import DUPLICATE, STATUS_NAMES, WindowStore

log = structlog.get_logger("lull.processor")


class InboundHandler:
    """Applies every event of a read batch in one pipeline, then lets the loop ack them all."""

    def __init__(self, store: WindowStore, closer: Closer, metrics: ProcessorMetrics) -> None:
        self._store = store
        self._closer = closer
        self._metrics = metrics

    async def __call__(self, stream: str, entries: Sequence[Entry]) -> list[Outcome]:
        """Outcomes in entry order: None (applied, ack) or Permanent (dead letter)."""
        outcomes: list[Outcome] = [None] * len(entries)
        pending: list[tuple[Event, int]] = []
        metrics = self._metrics
        for index, entry in enumerate(entries):
            body = entry.fields.get(b"body")
            if body is None:
                outcomes[index] = Permanent("entry has no body field")
                continue
            try:
                parsed = parse(body)
            except MalformedBody as exc:
                outcomes[index] = Permanent(f"malformed body: {exc}")
                continue
            received_at_ms = _int(entry.fields.get(b"received_at"))
            for platform, kind in parsed.ignored:
                metrics.ignored.labels(platform, kind).inc()
            for event in parsed.events:
                if ":" in event.account_id:
                    # The batch splits platform:account:user at the first two colons; Meta's
                    # ids are digits, so a colon here is a forged or broken body.
                    metrics.ignored.labels(event.platform, "malformed").inc()
                    continue
                metrics.event_counter(event.platform, event.kind).inc()
                pending.append((event, received_at_ms))
        # Any Redis error propagates: the loop retries the whole batch (applying is idempotent).
        results = await self._store.apply(pending)
        earliest: int | None = None
        statuses = [0] * len(STATUS_NAMES)
        for result in results:
            statuses[result.status] += 1
            if result.status != DUPLICATE and (earliest is None or result.deadline_ms < earliest):
                earliest = result.deadline_ms
        for status, count in enumerate(statuses):
            if count:
                metrics.applied.labels(STATUS_NAMES[status]).inc(count)
        if earliest is not None:
            self._closer.notify(earliest)
        return outcomes


def _int(value: bytes | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0
