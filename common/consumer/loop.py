"""The consumer-group loop that processor and sender share.

One task, one step at a time: claim pass when due, local retries when due, one XREADGROUP
with a short block, hand each stream's entries to the handler, then settle its outcomes
(settle.py: ack, dead-letter then ack, hold for a local retry, or follow an
entry the handler goes on with in the background). Steps never overlap, so a step
never races another over an entry, and a stop is noticed within one block.

With config.read_ahead, the handling of a read (handler and settle) runs as a task of its
own while the next XREADGROUP goes out and its entries are handed to the handler, at most
READ_AHEAD_DEPTH reads at once; anything else (a claim pass, retries, a pause, a stop, an
empty read) first waits for them. A read's entries are acked only after their own
handling: if the process dies meanwhile, they stay pending and are claimed like any other.

On a Redis Cluster the read is one XREADGROUP per hash slot, run concurrently (read.py):
each slot's streams are handled by one reader, the claim pass and retries never overlap them.

Recovery is the group's: whatever this replica does not ack stays in the PEL, and after
claim_idle_ms any replica's claim pass takes it (counting a delivery).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections import defaultdict

import structlog
from prometheus_client import CollectorRegistry
from redis.exceptions import ResponseError

from lull.common.clock import monotonic_ms
from lull.common.consumer.claim import FIRST_CURSOR, claim_page
from lull.common.consumer.config import ConsumerConfig, check_client
from lull.common.consumer.handler import Entry, EntryHandler
from lull.common.consumer.metrics import ConsumerMetrics
from lull.common.consumer.read import Reader
from lull.common.consumer.retries import Held, LocalRetries, claim_held, reread
from lull.common.consumer.settle import DeadHook, Decider, Settlement, failure_backoff_ms
from lull.common.consumer.upkeep import upkeep
from lull.common.redis_conn import REDIS_FAILURES, RedisClient
from lull.common.store.streams import ensure_group, text

log = structlog.get_logger("lull.consumer")

# Reads handled at once with read_ahead: one applying, the next one being parsed.
READ_AHEAD_DEPTH = 2


class Consumer:
    """Reads config.streams as one consumer of config.group and feeds handler."""

    def __init__(
        self,
        client: RedisClient,
        config: ConsumerConfig,
        handler: EntryHandler,
        metrics: CollectorRegistry | ConsumerMetrics,
        on_dead: DeadHook | None = None,
    ) -> None:
        """metrics: a registry to register the loop's metrics in, or a ConsumerMetrics made
        once and shared by every consumer of a process that uses one registry. on_dead: the
        owner's bookkeeping for a dead-lettered entry, run after its letter is written."""
        check_client(client, config.block_ms)
        if isinstance(metrics, CollectorRegistry):
            metrics = ConsumerMetrics(metrics)
        self._client = client
        self._config = config
        self._metrics = metrics
        self._log = log.bind(group=config.group, consumer=config.consumer)
        self._stop = asyncio.Event()
        self._retries = LocalRetries(touch_every_ms=config.claim_idle_ms / 2)
        self._writes = Settlement(client, config, metrics, self._log, on_dead)
        self._ready = False
        self._next_claim_ms = 0.0
        self._failures = 0
        """Consecutive steps in which a Redis command failed: what the backoff doubles on."""
        self._step_failed = False
        self._entries = metrics.entries
        self._group = config.group
        self._decider = Decider(
            handler,
            config=config,
            retries=self._retries,
            writes=self._writes,
            metrics=metrics,
            log=self._log,
        )
        self._in_hand: collections.deque[asyncio.Task[None]] = collections.deque()
        """read_ahead: the handling of each read still running, oldest first."""
        handle = self._handle_ahead if config.read_ahead else self._decider.handle
        self._reader = Reader(client, config, handle, self._read_failed)

    @property
    def name(self) -> str:
        """This consumer's name in the group."""
        return self._config.consumer

    @property
    def held(self) -> int:
        """Entries held for a local retry."""
        return len(self._retries)

    @property
    def stopping(self) -> bool:
        """True once request_stop() was called."""
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop after the current step (safe from a signal handler); it is not undone."""
        self._stop.set()

    async def run_forever(self) -> None:
        """Read, handle, retry and claim until request_stop(); held entries stay pending.

        Redis and handler failures are logged and retried, never raised; only a stream or
        dead-stream key of the wrong type (a deployment error) raises, at start.
        """
        self._log.info("consumer starting", streams=self._config.streams)
        try:
            while not self.stopping:
                await self._step(until_idle=False)
            await self._finish_in_hand()
        finally:
            self._drop_in_hand()
        self._leave()

    async def run_until_idle(self) -> None:
        """Claim pass, then work until a read returns nothing and nothing is held (tests)."""
        self._next_claim_ms = 0.0
        try:
            while not self.stopping:
                read = await self._step(until_idle=True)
                if read == 0 and not self._retries:
                    return
            await self._finish_in_hand()
        finally:
            self._drop_in_hand()
        self._leave()

    async def _handle_ahead(self, stream: str, entries: list[Entry], *, touched_ms: float) -> None:
        """read_ahead: handle a read in a task of its own and return, so the next read goes
        out meanwhile; first wait for the oldest when READ_AHEAD_DEPTH are in hand."""
        while len(self._in_hand) >= READ_AHEAD_DEPTH:
            await self._in_hand.popleft()
        task = asyncio.create_task(self._decider.handle(stream, entries, touched_ms=touched_ms))
        self._in_hand.append(task)

    async def _finish_in_hand(self) -> None:
        """Wait until every read in hand is handled and settled (a bug in one raises)."""
        while self._in_hand:
            _raise_if_cancel_swallowed()
            await self._in_hand.popleft()

    def _drop_in_hand(self) -> None:
        """The loop was cancelled or raised: cancel the handling still running. Its entries
        stay pending, unacked, for a claim pass (here or on another replica) to take."""
        while self._in_hand:
            self._in_hand.popleft().cancel()

    async def claim_pass(self) -> None:
        """Per stream: claim abandoned entries, trim, expire idle consumers, update gauges."""
        self._next_claim_ms = monotonic_ms() + self._config.claim_interval_ms
        for stream in self._config.streams:
            if self.stopping:
                return
            try:
                await self._claim(stream)
                await upkeep(self._client, self._config, self._metrics, self._log, stream)
            except REDIS_FAILURES as exc:
                self._redis_failed("claim", exc, stream=stream)

    async def _step(self, *, until_idle: bool) -> int | None:
        """One turn of the loop; returns entries read, None when no read was made."""
        _raise_if_cancel_swallowed()
        if self._step_failed:
            # Counted per step, not per failed command: a step that fails on every stream
            # and every held entry must not reach the backoff cap after a one-second outage.
            self._failures += 1
            self._step_failed = False
        if self._failures:
            await self._pause_ms(failure_backoff_ms(self._config, self._failures))
        if not self._ready and not self.stopping:
            await self._prepare()
        if not self._ready or self.stopping:
            await self._finish_in_hand()
            return None
        if self._in_hand and not self._only_reading():
            # A claim pass, retries or a settle never run beside a read in hand.
            await self._finish_in_hand()
        if monotonic_ms() >= self._next_claim_ms:
            await self.claim_pass()
        if self._decider.landed:
            await self._decider.settle_landed()
        if not self.stopping:
            await self._run_retries()
        if self.stopping:
            # What was handled is settled; held entries stay pending for others to claim.
            await self._finish_in_hand()
            return None
        if not self._may_read():
            # Backpressure: hold no more until some held entries are done.
            await self._finish_in_hand()
            await self._pause_ms(self._wait_ms(self._config.block_ms))
            return None
        read = await self._read(until_idle=until_idle)
        if not read:
            # Nothing new to overlap with: what is in hand is finished before the loop
            # waits, retries or says it is idle.
            await self._finish_in_hand()
        return read

    def _only_reading(self) -> bool:
        """True when this step has nothing to do but read: no claim pass, settle or retry due."""
        if self.stopping or monotonic_ms() >= self._next_claim_ms or self._decider.landed:
            return False
        next_action = self._retries.next_action_ms()
        return next_action is None or next_action > monotonic_ms()

    async def _prepare(self) -> None:
        try:
            kind = text(await self._client.type(self._config.dead_stream))
            if kind not in ("stream", "none"):
                # MULTI would still ack after a failed XADD to it: refuse to start.
                raise ValueError(f"dead_stream {self._config.dead_stream!r} is a {kind}")
            for stream in self._config.streams:
                if await ensure_group(self._client, stream, self._group):
                    self._log.info("consumer group created", stream=stream)
        except ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):
                raise  # a stream key holds something else: no retry will fix that
            self._redis_failed("create group", exc)
            return
        except REDIS_FAILURES as exc:
            self._redis_failed("create group", exc)
            return
        self._ready = True

    async def _read(self, *, until_idle: bool) -> int | None:
        next_action = self._retries.next_action_ms()
        if until_idle and next_action is None:
            block_ms: int | None = None  # tests: look, do not wait
        else:
            wait_ms = self._wait_ms(self._config.block_ms)
            # BLOCK 0 means forever: under 1 ms, read without blocking.
            block_ms = int(wait_ms) if wait_ms >= 1 else None
        read = await self._reader.read(block_ms, keep_reading=self._may_read)
        if read is not None:
            self._failures = 0
        return read

    def _may_read(self) -> bool:
        return not self.stopping and len(self._retries) < self._config.max_local_retries

    def _read_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP"):
            self._ready = False  # the stream was deleted: create the group again
        self._redis_failed("read", exc)

    async def _run_retries(self) -> None:
        due, touch = self._retries.actions(monotonic_ms())
        if touch:
            await self._touch(touch)
        if due:
            await self._rehandle(due)

    async def _claim_held(self, held: list[Held]) -> list[object] | None:
        try:
            return await claim_held(self._client, self._config, held)
        except REDIS_FAILURES as exc:
            self._redis_failed("claim held", exc, entries=len(held))
            return None

    async def _touch(self, held: list[Held]) -> None:
        results = await self._claim_held(held)
        received_ms = monotonic_ms()
        for h, result in zip(held, results or [None] * len(held), strict=True):
            if result is None or isinstance(result, Exception):
                self._retries.defer(h.key, received_ms + failure_backoff_ms(self._config, 1))
            elif result:
                self._retries.touched(h.key, received_ms)
            elif math.isinf(h.due_ms):
                # A Running entry no longer pending: its own work acked it (the sender's
                # finish step does, atomically with its delivered mark), or another replica
                # took it. Either way it is not ours to settle: let it go, quietly.
                self._retries.forget(h.key)
                self._log.debug("running entry no longer pending", id=h.entry.id)
            else:
                self._retries.forget(h.key)
                self._log.info(
                    "held entry taken over or deleted", stream=h.entry.stream, id=h.entry.id
                )

    async def _rehandle(self, held: list[Held]) -> None:
        """Handle due entries again: the ones still ours and still in their stream."""
        results = await self._claim_held(held)
        received_ms = monotonic_ms()
        owned: list[Held] = []
        for h, result in zip(held, results or [None] * len(held), strict=True):
            if result is None or isinstance(result, Exception):
                self._hold_again(h, received_ms)
            elif result:
                owned.append(h)
            else:
                self._log.info(
                    "held entry taken over or deleted", stream=h.entry.stream, id=h.entry.id
                )
        if owned:
            await self._reread_and_handle(owned, received_ms)

    async def _reread_and_handle(self, owned: list[Held], received_ms: float) -> None:
        try:
            current = await reread(self._client, owned)
        except REDIS_FAILURES as exc:
            self._redis_failed("reread held", exc, entries=len(owned))
            for h in owned:
                self._hold_again(h, received_ms)
            return
        batches: dict[str, list[Entry]] = defaultdict(list)
        alone: list[tuple[Entry, int]] = []
        gone: dict[str, list[str]] = defaultdict(list)
        for h, entry in zip(owned, current, strict=True):
            if entry is None:
                # Deleted from the stream while we held it: ack and skip (as watermill).
                gone[h.entry.stream].append(h.entry.id)
            elif h.failures:
                alone.append((entry, h.failures))
            else:
                batches[entry.stream].append(entry)
        for stream, ids in gone.items():
            await self._writes.finish(stream, gone=ids)
        for stream, entries in batches.items():
            await self._decider.handle(stream, entries, touched_ms=received_ms)
        # After a failed batch each entry goes alone: one bad entry cannot hold back others.
        for entry, failures in alone:
            await self._decider.handle(
                entry.stream, [entry], touched_ms=received_ms, failures=failures
            )

    def _hold_again(self, h: Held, touched_ms: float) -> None:
        """Redis failed before we could handle h: keep it, look again after a backoff."""
        self._retries.hold(
            h.entry,
            due_ms=monotonic_ms() + failure_backoff_ms(self._config, self._failures + 1),
            touched_ms=min(touched_ms, h.touched_ms),
            failures=h.failures,
        )

    async def _claim(self, stream: str) -> None:
        """XAUTOCLAIM entries idle past claim_idle_ms, claim_max_pages pages at most."""
        cursor = FIRST_CURSOR
        for _ in range(self._config.claim_max_pages):
            cursor, page = await claim_page(
                self._client, self._config, stream, cursor, self._retries
            )
            if page.handle or page.dead or page.gone:
                self._entries.labels(self._group, "claimed").inc(len(page.handle) + len(page.dead))
                self._log.info(
                    "claimed abandoned entries",
                    stream=stream,
                    handled=len(page.handle),
                    dead=len(page.dead),
                    gone=len(page.gone),
                )
            if page.dead or page.gone:
                await self._writes.finish(
                    stream, dead=page.dead, reason_kind="max_deliveries", gone=page.gone
                )
            if page.handle:
                await self._decider.handle(stream, page.handle, touched_ms=page.received_ms)
            if cursor == FIRST_CURSOR or self.stopping:
                return

    def _wait_ms(self, cap_ms: float) -> float:
        """How long the loop may wait before its next timer (retry or claim pass)."""
        now = monotonic_ms()
        wait_ms = min(cap_ms, self._next_claim_ms - now)
        next_action = self._retries.next_action_ms()
        if next_action is not None:
            wait_ms = min(wait_ms, next_action - now)
        return max(0.0, wait_ms)

    async def _pause_ms(self, wait_ms: float) -> None:
        """Sleep up to wait_ms, waking at once on request_stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), wait_ms / 1000)

    def _redis_failed(self, op: str, exc: BaseException, **context: object) -> None:
        self._step_failed = True
        self._metrics.redis_errors.labels(self._group, op).inc()
        self._log.warning(
            "redis command failed, backing off",
            op=op,
            error=f"{type(exc).__name__}: {exc}",
            backoff_ms=failure_backoff_ms(self._config, self._failures + 1),
            **context,
        )

    def _leave(self) -> None:
        left = self._retries.release_all()
        self._log.info("consumer stopped", held_left_pending=left)


def _raise_if_cancel_swallowed() -> None:
    """Stop a loop whose task was cancelled though no CancelledError reached it.

    Seen with redis-py 5.0.2 (not with 8.x): a task cancelled during a blocking XREADGROUP
    got the (empty) reply back and no CancelledError, its cancel request left pending; a
    loop with a read in hand then waited for that read's handler for ever instead of
    stopping (tests/common/test_consumer_read_ahead.py under `make test-lowest`).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
