"""The invariant, checked from what the fakes recorded against what ingest accepted.

- every message ingest answered 200 for is in exactly one emitted batch;
- every emitted batch reached the bot and was answered at the fake Graph API at least once
  (or was dead-lettered: counted as dead, never silently);
- a batch answered more than once is a duplicate, unless the sender slot that made the
  previous send was SIGKILLed in the gap between that send and its mark: from GAP_BEFORE_MS
  before the send (a request in flight when its sender dies is still recorded by the fake)
  to GAP_MS after it, or, when Redis was down then, until Redis was back and the sender's
  backoff over (a sender cannot mark while Redis is down). A Redis outage alone is no
  excuse: the sender that sent is alive and knows it sent;
- a conversation's batches carry consecutive seqs (from the base its life started at) and
  reach the bot and the Graph API in seq order;
- no window stays open past max_wait + grace + claim_idle (plus the claim pass interval
  and a slack for a loaded machine), except while Redis was down or recovering;
- send API messages: every key the send API answered 202 for is sent, once (the same
  send-then-crash gap excepted), and takes its seq in the conversation's order;
- human takeover: no batch closed during a pause (stamped "paused") ever reaches the bot or
  the Graph API. A paused batch is finished without an answer, which counts as delivered
  (paused), not lost, when its seq is finished; an unstamped batch may be finished
  unanswered too (the pause began after its close: the sender asks before the bot and
  before the first send), but only in a conversation a human wrote in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from tests.chaos.bot import Receipt
from tests.chaos.observe import Emitted

API_KEY = "apikey:"
"""The prefix of a send API message's sends (tests/chaos/api_sends.py names them so)."""
# The mark follows the send by one Redis round trip (measured: kills 3-8 ms after the send
# caused the resends); on a loaded 2-core box, give it half a second.
GAP_MS = 500
# A request written just before its sender died is recorded by the fake a little later.
GAP_BEFORE_MS = 100
SAMPLE = 5
# A consumer's or closer's retry after an outage lands within one outage length of Redis
# coming back; this covers the retry's own step and a loaded machine's scheduling.
RESUME_STEP_MS = 1000


@dataclass(frozen=True, slots=True)
class Send:
    """One reply the fake Graph API of sender slot `slot` accepted."""

    slot: int
    batch_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered entry: a batch (sender group) or a raw webhook (processor group)."""

    group: str
    batch_id: str | None
    reason: str


@dataclass(frozen=True)
class Evidence:
    """Everything the run recorded."""

    accepted: set[str]
    """Mids of the messages ingest answered 200 for."""
    posted: set[str]
    """Mids of every message posted, whatever the answer (a 503 may still have been stored)."""
    emitted: Sequence[Emitted]
    receipts: Sequence[Receipt]
    sends: Sequence[Send]
    dead: Sequence[DeadLetter]
    sender_kills: Sequence[tuple[int, int]]
    """(slot, wall-clock ms) of every SIGKILL of a sender."""
    outages_ms: Sequence[tuple[int, int]]
    """(down, up) wall-clock ms of every Redis restart."""
    max_open_ms: int
    """The longest a window may stay open (first message received → batch closed)."""
    recovery_ms: int
    """The longest a service may take to work again after Redis is back (its backoff cap)."""
    finished: Mapping[str, int] = field(default_factory=dict)
    """Conversation -> the seq up to which the sender finished its batches (at the end)."""
    human_conversations: frozenset[str] = frozenset()
    """Conversations a human wrote in (an echo or smb echo ingest answered 200 for)."""
    api_accepted: frozenset[str] = frozenset()
    """Idempotency-Keys the send API answered 202 for (tests/chaos/api_sends.py)."""


@dataclass
class Verdict:
    """Counts for the summary line, and every problem found."""

    accepted: int = 0
    batches: int = 0
    delivered: int = 0
    duplicates: int = 0
    lost: int = 0
    dead: int = 0
    paused: int = 0
    """Batches finished without an answer because a human had the conversation."""
    stamped: int = 0
    """Batches closed during a pause (stamped paused); the rest of `paused` were paused by
    the sender's own check (the pause began after their close)."""
    paused_answered: int = 0
    """Batches stamped paused that the bot got or the Graph API sent a reply for: must be 0."""
    gap_resends: int = 0
    gap_kill_after_ms: list[int] = field(default_factory=list)
    """For each gap resend: how long after the first send its sender was killed."""
    gap_resends_after_outage: int = 0
    """Gap resends excused only because Redis was down when the first send was made."""
    api_sent: int = 0
    """Send API keys sent at least once."""
    longest_open_ms: int = 0
    checked_windows: int = 0
    problems: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        """The line the issue asks for."""
        return (
            f"accepted={self.accepted} batches={self.batches} delivered={self.delivered} "
            f"duplicates={self.duplicates} lost={self.lost} dead={self.dead} "
            f"paused={self.paused} paused_answered={self.paused_answered}"
        )

    def problem(self, what: str, items: Iterable[object]) -> None:
        """Record a problem with a few examples."""
        listed = list(items)
        if listed:
            self.problems.append(f"{what}: {len(listed)}, e.g. {listed[:SAMPLE]}")


def judge(ev: Evidence) -> Verdict:
    """Check the invariant; the verdict lists every violation in problems."""
    v = Verdict(accepted=len(ev.accepted), dead=len(ev.dead))
    api = [e for e in ev.emitted if e.api]
    ev_batches = replace(
        ev,
        emitted=[e for e in ev.emitted if not e.api],
        sends=[s for s in ev.sends if not s.batch_id.startswith(API_KEY)],
    )
    batches = _check_emission(ev_batches, v)
    v.batches = len(batches)
    _check_delivery(ev_batches, v, batches)
    _check_sends(ev, v)
    _check_api(ev, v)
    _check_order(ev, v, batches, api)
    _check_windows(ev, v, batches)
    return v


def _check_emission(ev: Evidence, v: Verdict) -> dict[str, Emitted]:
    batches: dict[str, Emitted] = {}
    twice: list[str] = []
    for batch in ev.emitted:
        if batch.batch_id in batches:
            twice.append(batch.batch_id)
        batches.setdefault(batch.batch_id, batch)
    homes: dict[str, list[str]] = defaultdict(list)
    for batch in batches.values():
        for mid in batch.mids:
            homes[mid].append(batch.batch_id)
    in_two = {mid: ids for mid, ids in homes.items() if len(ids) > 1}
    lost = sorted(ev.accepted - homes.keys())
    unknown = sorted(homes.keys() - ev.posted)
    v.duplicates += len(twice) + sum(len(ids) - 1 for ids in in_two.values())
    v.lost += len(lost)
    v.problem("batch ids emitted twice", twice)
    v.problem("messages in two batches", in_two.items())
    v.problem("accepted messages in no batch", lost)
    v.problem("batched messages nobody posted", unknown)
    return batches


def _check_delivery(ev: Evidence, v: Verdict, batches: dict[str, Emitted]) -> None:
    received = {r.batch_id for r in ev.receipts}
    answered = {s.batch_id for s in ev.sends}
    dead = {d.batch_id for d in ev.dead if d.batch_id is not None}
    v.delivered = len(batches.keys() & received & answered)
    paused = _check_paused(ev, v, batches, (received, answered, dead))
    undelivered = sorted(batches.keys() - (received & answered) - dead - paused)
    v.lost += len(undelivered)
    v.problem("batches not delivered and not dead-lettered", undelivered)
    v.problem("batches the bot got that were never emitted", sorted(received - batches.keys()))
    v.problem("replies to batches never emitted", sorted(answered - batches.keys()))
    for receipt in ev.receipts:
        emitted = batches.get(receipt.batch_id)
        if emitted is not None and emitted.mids != receipt.mids:
            v.problem("the bot got a batch other than the one emitted", [receipt.batch_id])
    v.problem("dead letters", [(d.group, d.batch_id, d.reason) for d in ev.dead])


def _check_paused(
    ev: Evidence,
    v: Verdict,
    batches: dict[str, Emitted],
    seen: tuple[set[str], set[str], set[str]],
) -> set[str]:
    """The batches finished paused; records stamped batches the bot got as problems. seen:
    the batch ids the bot received, the Graph API answered, and dead-lettered."""
    received, answered, dead = seen
    stamped = {b for b, batch in batches.items() if batch.paused}
    v.stamped = len(stamped)
    reached = sorted(stamped & (received | answered))
    v.paused_answered = len(reached)
    v.problem("batches closed during a pause answered by the bot", reached)
    unanswered = {
        b
        for b, batch in batches.items()
        if b not in answered
        and b not in dead
        and batch.seq <= ev.finished.get(batch.conversation, 0)
    }
    paused = unanswered & (stamped | {b for b in unanswered if _human(ev, batches[b])})
    v.paused = len(paused)
    v.problem(
        "batches finished unanswered in a conversation no human wrote in",
        sorted(unanswered - paused),
    )
    return paused


def _human(ev: Evidence, batch: Emitted) -> bool:
    return batch.conversation in ev.human_conversations


def _check_sends(ev: Evidence, v: Verdict) -> None:
    by_batch: dict[str, list[Send]] = defaultdict(list)
    for send in sorted(ev.sends, key=lambda s: s.at_ms):
        by_batch[send.batch_id].append(send)
    kills: dict[int, list[int]] = defaultdict(list)
    for slot, at_ms in ev.sender_kills:
        kills[slot].append(at_ms)
    in_outage: list[tuple[str, list[tuple[int, int]]]] = []
    unexplained: list[tuple[str, list[tuple[int, int]]]] = []
    for batch_id, sends in by_batch.items():
        listed = [(s.slot, s.at_ms) for s in sends]
        for previous in sends[:-1]:  # each send after the first repeats the one before
            start, end = previous.at_ms - GAP_BEFORE_MS, _mark_deadline(ev, previous.at_ms)
            in_gap = [k for k in kills[previous.slot] if start <= k <= end]
            if in_gap:
                v.gap_resends += 1
                v.gap_kill_after_ms.append(in_gap[0] - previous.at_ms)
                v.gap_resends_after_outage += in_gap[0] > previous.at_ms + GAP_MS
                continue
            v.duplicates += 1
            # Told apart only to point at the cause: they are duplicates all the same.
            near = any(d - GAP_MS <= previous.at_ms <= u for d, u in ev.outages_ms)
            (in_outage if near else unexplained).append((batch_id, listed))
    v.problem("replies sent again after Redis failed between the send and its mark", in_outage)
    v.problem("replies sent twice outside the send-then-crash gap", unexplained)


def _mark_deadline(ev: Evidence, sent_ms: int) -> int:
    """The latest a sender alive all along would have marked a send at sent_ms."""
    deadline = sent_ms + GAP_MS
    for down, up in ev.outages_ms:
        if down - GAP_MS <= sent_ms <= up:
            deadline = max(deadline, up + ev.recovery_ms)
    return deadline


def _check_api(ev: Evidence, v: Verdict) -> None:
    sent = {s.batch_id.removeprefix(API_KEY) for s in ev.sends if s.batch_id.startswith(API_KEY)}
    v.api_sent = len(sent)
    dead = sum(1 for d in ev.dead if (d.batch_id or "").startswith("api:"))
    v.problem("send API messages accepted and never sent", sorted(ev.api_accepted - sent))
    v.problem("send API messages dead-lettered", [dead] if dead else [])


def _check_order(
    ev: Evidence, v: Verdict, batches: dict[str, Emitted], api: Sequence[Emitted] = ()
) -> None:
    seqs: dict[str, list[int]] = defaultdict(list)
    # A send API message takes its seq in the conversation's order, between batches.
    for batch in [*batches.values(), *api]:
        seqs[batch.conversation].append(batch.seq)
    # A conversation's life starts its seq at a base from the Redis clock (no state expires
    # during a run): its batches are base + 1 .. base + n.
    gaps = [c for c, s in seqs.items() if sorted(s) != list(range(min(s), min(s) + len(s)))]
    v.problem("conversations whose seqs are not consecutive", gaps)
    late_receipts = _out_of_order((r.conversation, r.seq) for r in ev.receipts)
    v.problem("batches the bot got after a later seq", late_receipts)
    ordered = sorted(ev.sends, key=lambda s: s.at_ms)
    sent = [(batches[s.batch_id].conversation, batches[s.batch_id].seq, s.at_ms)
            for s in ordered if s.batch_id in batches]  # fmt: skip
    v.problem("replies sent after a later seq's", _sends_out_of_order(sent))


def _out_of_order(seen: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    highest: dict[str, int] = {}
    late = []
    for conversation, seq in seen:
        if seq < highest.get(conversation, 0):
            late.append((conversation, seq))
        highest[conversation] = max(seq, highest.get(conversation, 0))
    return late


def _sends_out_of_order(sent: Sequence[tuple[str, int, int]]) -> list[tuple[str, int]]:
    # Two fake Graph APIs stamp in ms: sends in the same ms may be listed either way.
    highest: dict[str, tuple[int, int]] = {}
    late = []
    for conversation, seq, at_ms in sent:
        top_seq, top_ms = highest.get(conversation, (0, 0))
        if seq < top_seq and at_ms > top_ms:
            late.append((conversation, seq))
        if seq > top_seq:
            highest[conversation] = (seq, at_ms)
    return late


def _windows_resume_ms(ev: Evidence, down: int, up: int) -> int:
    """When closers work again after a Redis outage from down to up.

    Their backoff doubles from 100 ms, so the first retry after `up` comes less than one
    outage length (plus a step) later, and never later than the backoff cap allows.
    """
    return up + min(ev.recovery_ms, up - down + RESUME_STEP_MS)


def _check_windows(ev: Evidence, v: Verdict, batches: dict[str, Emitted]) -> None:
    late = []
    for batch in batches.values():
        start, end = batch.first_received_ms, batch.closed_at_ms
        if any(
            start <= _windows_resume_ms(ev, down, up) and down <= end for down, up in ev.outages_ms
        ):
            continue  # windows wait in Redis while it is down; the bound holds without outages
        v.checked_windows += 1
        open_ms = end - start
        v.longest_open_ms = max(v.longest_open_ms, open_ms)
        if open_ms > ev.max_open_ms:
            late.append((batch.batch_id, open_ms))
    v.problem(f"windows open longer than {ev.max_open_ms} ms", late)
