"""The processor's handler for raw webhook entries: parse, apply to windows, report outcomes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence

import structlog

from lull.common.consumer import Entry, Outcome, Permanent
from lull.common.conversation import BadConversation, Conversation
from lull.common.delivery import DeliveryFailure
from lull.common.events import Event, MalformedBody, Parsed, Turn
from lull.common.inbound_parts import PART_FIELD, only_part, read_part_field
from lull.common.platforms import parse
from lull.common.platforms._shared import MALFORMED
from lull.common.store.failures import FailureStore, Recorded
from lull.common.store.windows import (
    ADDED,
    DUPLICATE,
    OPENED,
    STATUS_NAMES,
    Applied,
    Ready,
    WindowStore,
)
from lull.processor.arrivals import ArrivalLog
from lull.processor.closer import Closer
from lull.processor.human_turns import HumanTurns
from lull.processor.metrics import ProcessorMetrics

log = structlog.get_logger("lull.processor")

# The ignored kind of a message that cannot go in a batch (too deep, larger than the cap).
UNBATCHABLE = "unbatchable"
# The ignored kind of an event for an account the accounts file does not name (strict).
UNKNOWN_ACCOUNT = "unknown_account"
# A dead letter's reason names this many items left out, then counts the rest.
MAX_REASONS_SHOWN = 5


class InboundApplier:
    """Applies every event of a read batch in one pipeline, then lets the loop ack them all."""

    def __init__(
        self,
        store: WindowStore,
        closer: Closer,
        metrics: ProcessorMetrics,
        failures: FailureStore,
        human_turns: HumanTurns,
        *,
        arrivals: ArrivalLog | None = None,
        refusal: Callable[[str], str | None] | None = None,
    ) -> None:
        """refusal: why an event of an account is refused (LULL_ACCOUNTS_STRICT), or None."""
        self._store = store
        self._closer = closer
        self._metrics = metrics
        self._failures = failures
        self._human_turns = human_turns
        self._arrivals = arrivals
        self._refusal = refusal
        self._applied: asyncio.Future[None] | None = None
        """When the apply of the call before this one is done (read ahead: see __call__)."""

    async def __call__(self, stream: str, entries: Sequence[Entry]) -> list[Outcome]:
        """Outcomes in entry order: None (applied, ack) or Permanent (dead letter): a body
        that is not one, or one with items left out (the rest of it is applied)."""
        # The consumer reads ahead: the next read's call parses while this one applies. Each
        # call takes its turn before its first await, so reads apply in the order they were
        # read, and a message is never applied before an earlier one of its conversation.
        before, mine = self._applied, asyncio.get_running_loop().create_future()
        self._applied = mine
        try:
            return await self._handle(entries, before, mine)
        finally:
            if not mine.done():
                mine.set_result(None)

    async def _handle(
        self,
        entries: Sequence[Entry],
        before: asyncio.Future[None] | None,
        mine: asyncio.Future[None],
    ) -> list[Outcome]:
        outcomes: list[Outcome] = [None] * len(entries)
        pending: list[Event] = []
        ready: list[Ready] = []
        failures: list[DeliveryFailure] = []
        turns: list[tuple[int, list[Turn]]] = []
        left_out: dict[int, list[str]] = {}
        for index, entry in enumerate(entries):
            parsed = _parsed(entry)
            if isinstance(parsed, Permanent):
                outcomes[index] = parsed
                continue
            received_at_ms = _int(entry.fields.get(b"received_at"))
            reasons = self._collect(parsed, received_at_ms, pending, ready)
            if reasons:
                left_out[index] = reasons
            failures += parsed.failures
            if parsed.turns:
                turns.append((index, parsed.turns))
        # Counted per (platform, kind) once a read, not once an event (a lock each).
        for (platform, kind), count in Counter((e.platform, e.kind) for e in pending).items():
            self._metrics.event_counter(platform, kind).inc(count)
        # Any Redis error propagates: the loop retries the whole batch (applying is idempotent).
        # Turns first: a human's turn and a user's message in the same read pause the
        # conversation before the window can close (a flush kind closes it at once).
        await _done(before)
        await self._apply_turns(turns, outcomes)
        applied = await self._store.apply_ready(ready)
        mine.set_result(None)  # the next read's call may apply
        self._closer.report(applied.now_ms, applied.closed)
        results = applied.applied
        earliest = self._count(results)
        if earliest is not None:
            self._closer.notify(earliest)
        if self._arrivals is not None:
            # New messages only: a redelivered or edited one was logged when it arrived.
            new = [e for e, r in zip(pending, results, strict=True) if r.status in (ADDED, OPENED)]
            await self._arrivals.record(new)
        for recorded in await self._failures.record(failures):
            if recorded.new:
                self._report(recorded)
        for index, reasons in left_out.items():
            # The entry is kept whole as a dead letter, once the rest of it is applied: a
            # replay applies what was left out (after a fix), the rest is deduplicated.
            if outcomes[index] is None:
                outcomes[index] = Permanent(_left_out(reasons))
        return outcomes

    def _count(self, results: Sequence[Applied]) -> int | None:
        """Count the applied events by status; the earliest deadline a new one set."""
        earliest: int | None = None
        statuses = [0] * len(STATUS_NAMES)
        for result in results:
            statuses[result.status] += 1
            if result.status != DUPLICATE and (earliest is None or result.deadline_ms < earliest):
                earliest = result.deadline_ms
        for status, count in enumerate(statuses):
            if count:
                self._metrics.applied.labels(STATUS_NAMES[status]).inc(count)
        return earliest

    async def _apply_turns(
        self, turns: list[tuple[int, list[Turn]]], outcomes: list[Outcome]
    ) -> None:
        """Apply each entry's business-side turns; an entry whose echo must wait is retried
        (its events are applied all the same, and dropped as duplicates the next time)."""
        for index, entry_turns in turns:
            retry = await self._human_turns.apply(entry_turns)
            if retry is not None:
                outcomes[index] = retry

    def _report(self, recorded: Recorded) -> None:
        """Count and log a failed delivery the first time it is recorded."""
        failure, sent = recorded.failure, recorded.sent
        self._metrics.failure_counter(failure.platform, failure.code, sent is not None).inc()
        # Ids and texts cut short: they come from the body.
        fields = {
            "platform": failure.platform,
            "account_id": failure.account_id,
            "message_id": failure.message_id[:128],
            "code": failure.code,
            "title": failure.title[:200],
            "details": failure.details[:500],
        }
        if sent is None:
            log.warning("delivery failed for a message lull does not remember", **fields)
        else:
            log.warning(
                "reply not delivered",
                conversation=sent.conversation,
                seq=sent.seq,
                **fields,
            )

    def _collect(
        self, parsed: Parsed, received_at_ms: int, pending: list[Event], ready: list[Ready]
    ) -> list[str]:
        """Count what parse ignored; append the events worth applying to pending, and each
        one encoded for the apply to ready; say why each item that cannot be batched
        (unparseable, too deep, too large) was left out."""
        metrics = self._metrics
        left_out: list[str] = []
        # Counted per distinct label, not per item: a 3 MiB body can hold a million items.
        if parsed.ignored:
            for (platform, kind), count in Counter(parsed.ignored).items():
                metrics.ignored_counter(platform, kind).inc(count)
                if kind == MALFORMED:
                    left_out.append(f"{count} {platform} item(s) could not be parsed")
        for event in parsed.events:
            try:
                Conversation.of(event.platform, event.account_id, event.user_id)
            except BadConversation:
                # Meta's ids are digits: a key that would not split back is a forged or
                # broken body.
                metrics.ignored_counter(event.platform, MALFORMED).inc()
                left_out.append(f"{event.platform} item {event.mid[:64]!r}: ':' in account id")
                continue
            refused = None if self._refusal is None else self._refusal(event.account_id)
            if refused is not None:
                metrics.ignored_counter(event.platform, UNKNOWN_ACCOUNT).inc()
                left_out.append(f"{event.platform} message {event.mid[:64]!r}: {refused}")
                continue
            prepared = self._store.prepare(event, received_at_ms)
            if isinstance(prepared, str):
                why = prepared
                metrics.ignored_counter(event.platform, UNBATCHABLE).inc()
                # Ids cut short: they come from the body.
                log.warning(
                    "message left out: it cannot go in a batch",
                    platform=event.platform,
                    mid=event.mid[:64],
                    reason=why[:200],
                )
                left_out.append(f"{event.platform} message {event.mid[:64]!r}: {why[:200]}")
                continue
            pending.append(event)
            ready.append(prepared)
        return left_out


async def _done(before: asyncio.Future[None] | None) -> None:
    """Wait for the apply of the call before, done or failed alike: a failed call's entries
    are retried later, as without read-ahead."""
    if before is not None:
        await asyncio.wait((before,))


def _left_out(reasons: list[str]) -> str:
    """The dead letter's reason: the first few items left out, and how many more."""
    shown = "; ".join(reasons[:MAX_REASONS_SHOWN])
    more = len(reasons) - MAX_REASONS_SHOWN
    return f"left out of every batch: {shown}" + (f"; and {more} more" if more > 0 else "")


def _int(value: bytes | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _parsed(entry: Entry) -> Parsed | Permanent:
    """The events of an entry's body (of its part, for one of several copies), or why none."""
    body = entry.fields.get(b"body")
    if body is None:
        return Permanent("entry has no body field")
    try:
        parsed = parse(body)
    except MalformedBody as exc:
        return Permanent(f"malformed body: {exc}")
    part = read_part_field(entry.fields.get(PART_FIELD))
    if part is not None:
        # One of several copies of a body (common/inbound_parts.py): the other parts'
        # conversations are applied from their own copies, in their order.
        parsed = only_part(parsed, *part)
    return parsed
