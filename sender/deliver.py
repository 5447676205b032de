"""One batch's way out: order, per-user limit, handler, supersede, sends, finish.

Each step that can fail returns an outcome to the consumer loop instead of raising:
RetryLater (this replica tries again after the delay, other conversations go on) or
Permanent (dead letter). A rate-limit slot close enough is reserved and slept for; a later
one is a RetryLater at the batch's turn (sender/rates/gate.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from lull.common.backoff import backoff_ms
from lull.common.batch import Batch
from lull.common.coalesce import Command
from lull.common.consumer import Decided, Entry, Permanent, RetryLater
from lull.common.outside_text import cut
from lull.common.replies import NO_ANSWER, parse_answer
from lull.common.store.api_messages import ApiSend
from lull.common.store.deliveries import DeliveryStore, SendState
from lull.common.store.keys import Keys
from lull.common.store.rate_limits import Limiters
from lull.sender.accounts.sends import AccountSends
from lull.sender.api_sends import api_requests, obeys_pause
from lull.sender.bot import Bot, BotPermanent, BotRetry, is_deferred
from lull.sender.finish import Finisher
from lull.sender.graph.client import GraphClient, GraphError, GraphRequest
from lull.sender.handoff import Handoffs, is_thread_control, message_requests
from lull.sender.media import MediaService
from lull.sender.metrics import SenderMetrics
from lull.sender.presence.calls import Presence, Showing
from lull.sender.presence.deferred_typing import DeferredTyping
from lull.sender.progress import LocalProgress
from lull.sender.rates.gate import RateGate
from lull.sender.rates.rate import Grant, Rate, RateLimiter
from lull.sender.rates.send_limits import send_limits
from lull.sender.reply_window import WINDOW_CLOSED, ready_to_send, window_ends_at_ms, window_open
from lull.sender.sends.bounds import TooManySends, bounded_requests
from lull.sender.sends.marks import PAUSED, SendMarks, paused_before_bot
from lull.sender.sends.sent_ids import SentIds
from lull.sender.settings import SenderSettings

log = structlog.get_logger("lull.sender")

DEFERRED = "deferred"
"""The outcome of a batch whose bot answers later (202, `{"defer": true}`)."""

# Batch n waits for n-1 of the same conversation; it is usually seconds behind at most.
ORDER_RETRY_MS = 50


@dataclass
class _Job:
    """One batch entry being delivered, as this attempt sees it."""

    shard: int
    entry: Entry
    batch: Batch
    state: SendState
    replay: bool
    """A replay (`lull dead replay`) of a batch that finished as dead: its seq is finished,
    so it is delivered out of order, and only while its dead mark is still there."""
    safe_until: float
    """time.monotonic() before which no other replica can have claimed the entry."""
    user_last_ms: int = 0
    """When the user last wrote, as far as lull knows: Meta's 24-hour window starts there
    (sender/reply_window.py)."""
    deferred: bool = False
    """The bot deferred its answer (sender/presence/deferred_typing.py): typing stays on."""


@dataclass(frozen=True, slots=True)
class _Stop:
    """The entry is no longer this consumer's to work on: return outcome to the loop."""

    outcome: Decided


@dataclass
class Deliverer:
    """Delivers batches; one per sender replica, shared by every consumer task."""

    settings: SenderSettings
    keys: Keys
    store: DeliveryStore
    limiter: RateLimiter
    bot: Bot
    graph: GraphClient
    metrics: SenderMetrics
    sent_ids: SentIds
    handoffs: Handoffs
    presence: Presence
    progress: LocalProgress = field(default_factory=LocalProgress)
    marks: SendMarks | None = None
    """Messenger/Instagram send marks for telling lull's echoes (sender/sends/marks.py)."""
    media: MediaService | None = None
    """Transcripts before the bot, media links for it (sender/media/); None: not configured."""
    sends: AccountSends | None = None
    """Each account's settings (the accounts file); None: the settings' for every one."""
    finisher: Finisher = field(init=False)
    account_sends: AccountSends = field(init=False)
    deferred_typing: DeferredTyping = field(init=False)
    gate: RateGate = field(init=False)
    limiters: Limiters = field(init=False)

    def __post_init__(self) -> None:
        self.account_sends = self.sends or AccountSends(self.settings)
        self.limiters = Limiters(self.keys)
        self.gate = RateGate(self.limiter, self.metrics)
        self.deferred_typing = DeferredTyping(self.presence)
        self.finisher = Finisher(
            self.settings, self.keys, self.store, self.metrics, self.sent_ids, self.progress,
            self.marks,
        )  # fmt: skip

    async def deliver(self, entry: Entry) -> Decided:
        """Take one batch as far as it can go now; the outcome tells the loop what's next."""
        try:
            batch = Batch.decode(entry.fields.get(b"batch"))
        except ValueError as exc:
            return self._dead(f"malformed batch: {exc}")
        shard = self.keys.shard_of_outbound(entry.stream)
        settings = self.settings
        asked_at = time.monotonic()
        loaded = await self.store.read(shard, entry.id, batch, settings.history_messages > 0)
        if not loaded.claim.owned:
            self.progress.forget(batch.batch_id)
            return self._taken_over(entry)
        seq = batch.seq
        replay = seq <= loaded.delivered_seq
        if replay and not loaded.claim.marked:
            # Delivered before a crash or a claim: ack and skip, never answer twice.
            self.progress.forget(batch.batch_id)
            self.metrics.deliveries.labels("duplicate").inc()
            return None
        if seq > loaded.delivered_seq + 1:
            self.metrics.deliveries.labels("waiting").inc()
            return RetryLater(ORDER_RETRY_MS, f"waiting for seq {loaded.delivered_seq + 1}")
        safe_until = self._safe_until(asked_at, loaded.claim.idle_ms)
        state = self.progress.adopt(batch.batch_id, loaded.state)
        user_last_ms = max(loaded.claim.user_last_ms, batch.last_event_time)
        job = _Job(shard, entry, batch, state, replay, safe_until, user_last_ms)
        if self.media is not None:
            # Voice notes become text once, before the bot (and the history) sees the batch.
            job.batch = await self.media.before_bot(batch, fresh=state.requests is None)
        send = ApiSend.of(batch)
        if job.state.requests is None and send is not None:
            # A send API message: its own replies, no bot (sender/api_sends.py).
            self.deferred_typing.replied(batch.conversation)
            if send.obeys_pause and loaded.claim.paused:
                await self._finish(job, [], PAUSED)
                return None
            try:
                graph = self.account_sends.of(batch.account_id).graph
                job.state.requests = api_requests(batch, send, settings, graph)
            except ValueError as exc:
                return self._dead(f"send API message: {exc}")
        if job.state.requests is None:
            # Before the bot (and anything it starts): a human has the conversation.
            if paused_before_bot(batch, loaded.claim.paused):
                await self._finish(job, [], PAUSED)
                return None
            outcome = await self._call_bot(job, loaded.history)
            if outcome is not None or job.state.requests is None:
                return outcome
        return await self._send(job)

    async def _call_bot(self, job: _Job, history: list[Any]) -> Decided:
        """Fill job.state.requests from the bot's replies, or say why not (outcome)."""
        batch, state = job.batch, job.state
        rate = self.account_sends.of(batch.account_id).rates.rate_per_user
        if rate is not None and not state.admitted:
            key = self.limiters.user(batch.conversation)
            grant = await self.gate.take("user", key, rate)
            if not grant.taken:
                return self.gate.come_back(key, rate, grant, "per-user rate limit")
            await self.gate.use("user", key, rate)
            state.admitted = True
        # The bot will be called: read once per batch, typing while the call is in flight
        # (sender/presence/calls.py); a replay is only being finished, a `none` handler never
        # answers; after Meta's 24-hour window a sender action is refused like a message.
        answering = not (job.replay or self.bot.forward_only)
        show = answering and window_open(job.user_last_ms, _now_ms())
        showing = self.presence.start(
            batch, show=show,
            read=not state.read_shown, on_read=state.shown_read,
        )  # fmt: skip
        try:
            return await self._ask_bot(job, history, showing)
        finally:
            # No reply follows now (none, or a retry later): typing must not outlast the call;
            # unless the answer comes later (deferred): then it stays on a while.
            showing.stop(typing_off=state.requests is None and not job.deferred)
            if job.deferred and show:
                self.deferred_typing.start(batch)

    async def _ask_bot(self, job: _Job, history: list[Any], showing: Showing) -> Decided:
        """The bot's answer to an admitted batch, as in _call_bot."""
        batch, state = job.batch, job.state
        started = time.perf_counter()
        failure: BotRetry | str | None = None
        answer = NO_ANSWER
        try:
            # The bot is told the window, so that it can answer with a tag or a template.
            ends_at = window_ends_at_ms(job.user_last_ms)
            document = {**batch.to_dict(), "history": history, "reply_window_ends_at": ends_at}
            if self.media is not None:
                document = await self.media.for_bot(batch, document)
            raw_answer = await self.bot(document, showing.reached)
            job.deferred = is_deferred(raw_answer) and not self.bot.forward_only
            no_answer = self.bot.forward_only or job.deferred
            answer = NO_ANSWER if no_answer else parse_answer(raw_answer)
        except BotRetry as exc:
            self.metrics.handler_seconds.labels("retry").observe(time.perf_counter() - started)
            failure = exc
        except (BotPermanent, ValueError) as exc:
            self.metrics.handler_seconds.labels("permanent").observe(time.perf_counter() - started)
            failure = exc.reason if isinstance(exc, BotPermanent) else str(exc)
        else:
            self.metrics.handler_seconds.labels("ok").observe(time.perf_counter() - started)
        # Before any save below: a read shown meanwhile is in the state it saves.
        showing.ended()
        # The bot may have taken longer than claim_idle_ms (or this replica stalled): if
        # another replica took the entry over meanwhile, its answer is the one that counts.
        stop = await self._check(job)
        if stop is not None:
            return stop.outcome
        if isinstance(failure, BotRetry):
            return await self._retry(job, failure.reason, failure.retry_after_ms)
        if failure is not None:
            return self._dead(f"handler: {failure}")
        replies = answer.replies
        if not replies and answer.handoff is None:
            # Deferred: its replies come through the send API, in order after it.
            await self._finish(job, [], DEFERRED if job.deferred else "no_reply")
            return None
        if self.settings.supersede and not job.replay:
            # A replay is not superseded: the newer batches never carried its messages.
            latest = await self.store.latest_seq(job.shard, batch.conversation)
            if latest > batch.seq:
                # A newer, fuller batch of this conversation is closed: answer that one only.
                await self._finish(job, [], "superseded")
                return None
        settings, graph = self.settings, self.account_sends.of(batch.account_id).graph
        try:
            state.requests = bounded_requests(
                batch, replies, graph.version, routes=graph.routes,
                max_reply_parts=settings.max_reply_parts, max_sends=settings.max_sends_per_batch,
            )  # fmt: skip
            self.handoffs.plan(batch, answer.handoff, state, graph.version)
        except TooManySends as exc:
            return self._dead(f"answer too long, nothing sent: {exc}")
        except ValueError as exc:
            return self._dead(f"cannot build Graph API requests: {exc}")
        return None

    async def _send(self, job: _Job) -> Decided:
        """Send the replies not yet accepted, in order, each within the account's limit, and
        each only while the entry is still this consumer's."""
        state = job.state
        assert state.requests is not None
        ready = ready_to_send(state.requests[state.sent :], job.user_last_ms, _now_ms())
        if ready is None:
            return await self._window_closed(job)
        first_of_attempt, first = True, state.sent
        # Tagged or template replies after the window: no typing (Meta refuses sender actions).
        show = not job.replay and window_open(job.user_last_ms, _now_ms())
        while state.sent < len(state.requests):
            request = ready[state.sent - first]
            if not is_thread_control(request):
                # Replies and chunks after the first are paced (LULL_REPLY_DELAY_MS), typing
                # shown meanwhile.
                await self.presence.pace(job.batch, state.requests, state.sent, show=show)
            stop = await self._check(job)
            if stop is not None:
                return stop.outcome
            slept = await self._take_units(job, request)
            if isinstance(slept, _Stop):
                return slept.outcome
            # Messenger/Instagram: the echo of this send must find the in-flight mark
            # (sender/sends/marks.py); a later send of this attempt finds it kept up already.
            before = self.marks.before(job.batch) if first_of_attempt and self.marks else []
            stop = await self._cleared(job, slept=slept, also=before)
            if stop is not None:
                return stop.outcome
            first_of_attempt = False
            await self._use_units(job, request)
            # The units are spent by this attempt, whatever Meta answers.
            state.held = []
            message_id = await self._post(job, request)
            if isinstance(message_id, _Stop):
                return message_id.outcome
            state.sent += 1
            state.throttles = 0
            state.message_ids.append(message_id)
            if self.marks is not None and state.sent < len(state.requests):
                await self.store.execute(self.marks.between(job.batch, message_id))
        if state.handoff is not None:
            failures = await self.handoffs.complete(job.batch, state)
            if failures is not None:
                return await self._again(job, "handoff webhook", self._wait_ms(failures, None))
        outcome = "sent" if state.handoff is None else "handoff"
        await self._finish(job, message_requests(state.requests), outcome)
        return None

    async def _window_closed(self, job: _Job) -> Decided:
        """Meta's 24-hour window is closed for the replies not sent yet: finish the batch
        `window_closed` (the replies sent before stay in the history), without a call to
        Meta and without a dead letter."""
        stop = await self._check(job)
        if stop is not None:
            return stop.outcome
        state = job.state
        sent = message_requests((state.requests or [])[: state.sent])
        await self._finish(job, sent, WINDOW_CLOSED)
        return None

    async def _cleared(self, job: _Job, *, slept: bool, also: list[Command]) -> _Stop | None:
        """The last checks before a send; `also` (the in-flight mark) is run before it
        returns. The same-moment rule (sender/sends/marks.py): right before the first send the
        pause is asked, always (`also` rides that round trip). After a sleep for a slot the
        entry may have been claimed meanwhile (the slot is then left unused, which errs on
        the side of the limit)."""
        if job.state.sent == 0:
            return await self._check(job, pause=obeys_pause(job.batch), also=also)
        stop = await self._check(job) if slept else None
        if stop is None and also:
            await self.store.execute(also)
        return stop

    async def _post(self, job: _Job, request: GraphRequest) -> str | _Stop:
        """One Graph API request: the id Meta gave it, or what the batch does instead."""
        started = time.perf_counter()
        try:
            message_id = await self.handoffs.post(self.graph, request)
        except GraphError as exc:
            self.metrics.graph_seconds.labels(str(exc.status), str(exc.code)).observe(
                time.perf_counter() - started
            )
            if exc.kind == "permanent":
                return _Stop(self._dead(f"graph api: code {exc.code}: {exc.message}"))
            if exc.kind == "window":
                # Meta's clock says the window closed before lull's did: the same outcome.
                return _Stop(await self._window_closed(job))
            if exc.kind == "throttle":
                return _Stop(await self._throttled(job, exc))
            return _Stop(await self._retry(job, str(exc), exc.retry_after_ms))
        self.metrics.graph_seconds.labels("200", "").observe(time.perf_counter() - started)
        return message_id

    async def _take_units(self, job: _Job, request: GraphRequest) -> bool | _Stop:
        """A unit of each limit the send counts against (sender/rates/send_limits.py); whether it
        slept for one, or _Stop when one is too far away (the batch comes back then)."""
        state, slept = job.state, False
        account_rate = self.account_sends.of(job.batch.account_id).rates.rate_global
        limits = send_limits(self.settings, self.limiters, job.batch, request, account_rate)
        for scope, key, rate in limits:
            if scope in state.held:
                continue  # taken for this send before a later limit sent the batch back
            grant = await self.gate.take(scope, key, rate)
            if not grant.taken:
                return _Stop(await self._later(job, key, rate, grant, f"{scope} rate limit"))
            state.held.append(scope)
            slept = slept or grant.wait_ms > 0
        return slept

    async def _use_units(self, job: _Job, request: GraphRequest) -> None:
        """Right before the send: every unit of it is used now, held ones included; late
        units wait here for room rather than bunch (sender/rates/rate.py)."""
        account_rate = self.account_sends.of(job.batch.account_id).rates.rate_global
        limits = send_limits(self.settings, self.limiters, job.batch, request, account_rate)
        for scope, key, rate in limits:
            await self.gate.use(scope, key, rate)

    async def _later(self, job: _Job, key: str, rate: Rate, grant: Grant, reason: str) -> Decided:
        """A send's slot is too far away: keep the progress (units held included), come back
        at the batch's turn. Saved only while the entry is still ours (like _again)."""
        stop = await self._check(job)
        if stop is not None:
            return stop.outcome
        await self.store.save(job.shard, job.batch.batch_id, job.state)
        return self.gate.come_back(key, rate, grant, reason)

    async def _retry(self, job: _Job, reason: str, retry_after_ms: int | None) -> Decided:
        state = job.state
        state.attempts += 1
        if state.attempts >= self.settings.send_max_attempts:
            return self._dead(f"gave up after {state.attempts} attempts: {reason}")
        return await self._again(job, reason, self._wait_ms(state.attempts, retry_after_ms))

    async def _throttled(self, job: _Job, exc: GraphError) -> Decided:
        """Meta asks the account (or the user pair) to slow down. That is no failure of this
        batch, so it does not use up LULL_SEND_MAX_ATTEMPTS: the batch waits as long as Meta
        asks, longer each time it asks again, until its reply could not be sent anyway: the
        come-back then finds the window closed (_send) and finishes `window_closed`."""
        self.metrics.rate_waits.labels("meta").inc()
        job.state.throttles += 1
        return await self._again(
            job, str(exc), self._wait_ms(job.state.throttles, exc.retry_after_ms)
        )

    def _wait_ms(self, times: int, asked_ms: int | None) -> int:
        """The wait Meta asked for, or the backoff after `times` failures if that is longer."""
        settings = self.settings
        backoff = backoff_ms(
            times, settings.send_backoff_base_ms, settings.send_backoff_max_ms, jitter=True
        )
        return max(asked_ms or 0, backoff)

    async def _again(self, job: _Job, reason: str, delay_ms: int) -> Decided:
        """Save the batch's progress and have the loop hand it back after delay_ms."""
        # The send state is shared by batch id: a replica that lost the entry must not
        # overwrite the progress of the one that took it over.
        stop = await self._check(job)
        if stop is not None:
            return stop.outcome
        await self.store.save(job.shard, job.batch.batch_id, job.state)
        self.metrics.deliveries.labels("retried").inc()
        log.info("batch retried", batch_id=job.batch.batch_id, reason=reason, delay_ms=delay_ms)
        return RetryLater(delay_ms, reason)

    async def _check(
        self, job: _Job, *, pause: bool = False, also: list[Command] | None = None
    ) -> _Stop | None:
        """None while the entry is this consumer's (and, for a replay, still undelivered).

        Asks Redis only when another replica could have claimed the entry by now, so a batch
        whose bot answers promptly costs no extra round trip. A replay always asks: two
        copies of it may be on their way at once. With pause, always asks, and also whether
        the conversation is paused: then the batch is finished `paused` here."""
        if not pause and not job.replay and time.monotonic() < job.safe_until:
            if also:
                await self.store.execute(also)
            return None
        asked_at = time.monotonic()
        conversation = job.batch.conversation if pause else None
        claim = await self.store.check(
            job.shard, job.entry.id, job.batch, conversation, also=also or ()
        )
        if not claim.owned:
            self.progress.forget(job.batch.batch_id)
            return _Stop(self._taken_over(job.entry))
        if job.replay and not claim.marked:
            # Another copy of this replay was delivered meanwhile.
            self.progress.forget(job.batch.batch_id)
            self.metrics.deliveries.labels("duplicate").inc()
            return _Stop(None)
        job.safe_until = self._safe_until(asked_at, claim.idle_ms)
        job.user_last_ms = max(job.user_last_ms, claim.user_last_ms)
        if claim.paused:
            await self._finish(job, [], PAUSED)
            # The bot had answered: its typing may still show; a human has the user now.
            self.presence.typing_off(job.batch, show=not job.replay)
            return _Stop(None)
        return None

    def _safe_until(self, asked_at: float, idle_ms: int) -> float:
        """Until when (monotonic s) no replica can claim an entry that was idle idle_ms when
        asked at asked_at. Every replica claims after the same claim_idle_ms (the consumer
        loop relies on that too); a quarter of it is left as a margin for clocks and flight."""
        claim_idle_ms = self.settings.group.claim_idle_ms
        return asked_at + (claim_idle_ms * 3 / 4 - idle_ms) / 1000

    def _taken_over(self, entry: Entry) -> Decided:
        """Another consumer claimed the entry (or finished it): leave it, never ack it.

        The loop holds it for a retry, and its XCLAIM then finds the entry is not ours and
        forgets it."""
        self.metrics.deliveries.labels("taken_over").inc()
        log.warning("batch taken over by another consumer", stream=entry.stream, id=entry.id)
        return RetryLater(0, "taken over by another consumer")

    def _dead(self, reason: str) -> Permanent:
        self.metrics.deliveries.labels("dead").inc()
        # A reason may quote the bot or Meta; it is stored in the dead letter: bounded.
        return Permanent(cut(reason))

    async def _finish(self, job: _Job, requests: list[GraphRequest], outcome: str) -> None:
        await self.finisher.finish(
            shard=job.shard, entry_id=job.entry.id, batch=job.batch, state=job.state,
            replay=job.replay, requests=requests, outcome=outcome,
        )  # fmt: skip

    async def mark_dead(self, entry: Entry, reason: str = "") -> None:
        """After a batch was dead-lettered (sender/finish.py)."""
        await self.finisher.mark_dead(entry, reason)


def _now_ms() -> int:
    """The wall clock the window is judged on, as the processor's `user_last_ms` (Redis
    clock) is written: hosts are assumed NTP-synced; Meta's own answer covers the rest."""
    return int(time.time() * 1000)
