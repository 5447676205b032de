"""Signed webhook traffic against ingest: users typing bursts, bounded in count and in time.

`simulate(config)` runs `users` simulated people; each sends `messages_per_user` text
messages, one POST each, `gap_ms` apart (with jitter), the users starting staggered over one
gap; with `media`, then a picture and a voice note. `rate_per_s` caps the POSTs per second
of the whole run by spacing them evenly. A run ends when every message is sent, `duration_s`
has passed, or `stop` is set (POSTs in flight then finish, each within `timeout_s`). Nothing
is retried: a non-200 answer or a failed POST is recorded as it is, and the caller decides
what it means (Meta would retry).

The configuration and the loopback-only rule are in ops/simulate_config.py; everything a
caller needs is importable from here.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from lull.common.conversation import Conversation
from lull.common.signing import sign
from lull.ops.simulate_config import (
    DEFAULT_CONCURRENCY,
    MAX_POSTS,
    SimulateConfig,
    SimulateError,
    check_url,
    is_loopback,
)
from lull.ops.simulate_payloads import (
    PICTURE,
    SIGNATURE_HEADER,
    VOICE,
    SimMessage,
    build_body,
    burst_texts,
    message_id,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_POSTS",
    "PostRecord",
    "SimulateConfig",
    "SimulateError",
    "Summary",
    "check_url",
    "is_loopback",
    "percentile",
    "simulate",
]

# Each pause between one user's messages is gap_ms times a factor drawn from this range.
JITTER = (0.5, 1.5)


@dataclass(frozen=True, slots=True)
class PostRecord:
    """One POST and what came of it."""

    user_id: str
    account_id: str
    conversation: str
    """platform:account:user, the key of the window the messages go to."""
    mids: tuple[str, ...]
    texts: tuple[str, ...]
    status: int | None
    """HTTP status; None when no answer came (connection error or timeout)."""
    error: str | None
    latency_ms: float
    sent_at_ms: int
    """Wall clock when the POST started, ms since the epoch (also the messages' timestamp)."""


@dataclass(frozen=True)
class Summary:
    """What a run sent and how it was answered."""

    run_id: str
    planned: int
    posts: int
    statuses: dict[int, int]
    """HTTP status -> POSTs answered with it."""
    errors: int
    """POSTs that got no answer."""
    error_types: dict[str, int]
    p50_ms: float | None
    """Latency percentiles of the answered POSTs; None when none was answered."""
    p99_ms: float | None
    elapsed_s: float
    records: list[PostRecord]

    @property
    def all_ok(self) -> bool:
        """At least one POST, and every POST answered 200."""
        return self.posts > 0 and self.statuses.get(200, 0) == self.posts


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of ascending values; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def _pause(halt: asyncio.Event, delay_s: float) -> bool:
    """Wait delay_s unless halted first; True when the run is halted."""
    if delay_s <= 0 or halt.is_set():
        return halt.is_set()
    try:
        async with asyncio.timeout(delay_s):
            await halt.wait()
    except TimeoutError:
        return False
    return True


class _Pacer:
    """Hands out send times 1/rate apart: even pacing, never a burst to catch up."""

    def __init__(self, rate_per_s: float | None) -> None:
        self._interval_s = 0.0 if rate_per_s is None else 1.0 / rate_per_s
        self._next_s = 0.0

    def delay_s(self, now_s: float) -> float:
        """Reserve the next slot; how long to wait for it."""
        if not self._interval_s:
            return 0.0
        slot = max(now_s, self._next_s)
        self._next_s = slot + self._interval_s
        return slot - now_s


class _Run:
    """The state of one simulate() call."""

    def __init__(
        self,
        config: SimulateConfig,
        session: aiohttp.ClientSession,
        halt: asyncio.Event,
        stop: asyncio.Event,
        on_post: Callable[[PostRecord], None] | None,
    ) -> None:
        self.config = config
        self.run_id = config.run_id or secrets.token_hex(4)
        self.records: list[PostRecord] = []
        self.latencies_ms: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.error_types: Counter[str] = Counter()
        self._session = session
        self._halt = halt
        self._stop = stop
        self._on_post = on_post
        self._pacer = _Pacer(config.rate_per_s)
        self._slots = asyncio.Semaphore(config.concurrency)
        self._headers = {"Content-Type": "application/json"}

    def _rng(self, index: int) -> random.Random:
        # One generator per user: a seeded run is the same whatever order the users run in.
        seed = None if self.config.seed is None else f"{self.config.seed}:{index}"
        return random.Random(seed)  # noqa: S311  (timing jitter and texts, not security)

    async def user(self, index: int) -> None:
        """Send one user's messages, gap_ms apart with jitter; returns early when halted."""
        config, halt = self.config, self._halt
        rng = self._rng(index)
        sends: list[tuple[str, str | None]] = [
            (text, None) for text in burst_texts(rng, config.messages_per_user)
        ]
        if config.media:
            sends += [("here is a picture", PICTURE), ("", VOICE)]
        gap_s = config.gap_ms / 1000
        loop = asyncio.get_running_loop()
        if await _pause(halt, index * gap_s / config.users):
            return
        for n, (text, media) in enumerate(sends):
            if n and await _pause(halt, gap_s * rng.uniform(*JITTER)):
                return
            if await _pause(halt, self._pacer.delay_s(loop.time())) or self._halted():
                return
            await self._post(index, n, text, media)

    def _halted(self) -> bool:
        # stop itself too, not only halt: the watcher that copies it runs a moment later.
        return self._halt.is_set() or self._stop.is_set()

    async def _post(self, index: int, n: int, text: str, media: str | None = None) -> None:
        config = self.config
        async with self._slots:
            if self._halted():
                return  # halted while waiting for a free slot
            sent_at_ms = int(time.time() * 1000)
            message = SimMessage(
                platform=config.platform,
                account_id=config.account,
                user_id=config.user(index, self.run_id),
                mid=message_id(config.platform, self.run_id, index, n),
                text=text,
                time_ms=sent_at_ms,
                media=media,
                media_base=config.media_base,
            )
            body = build_body(message)
            headers = {**self._headers, SIGNATURE_HEADER: sign(config.app_secret, body)}
            status: int | None = None
            error: str | None = None
            started = time.perf_counter()
            try:
                # No redirects: a redirect could lead a loopback-only run to another host.
                async with self._session.post(
                    config.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            latency_ms = (time.perf_counter() - started) * 1000
        record = PostRecord(
            user_id=message.user_id,
            account_id=message.account_id,
            conversation=Conversation(config.platform, message.account_id, message.user_id).key,
            mids=(message.mid,),
            texts=(text,),
            status=status,
            error=error,
            latency_ms=round(latency_ms, 3),
            sent_at_ms=sent_at_ms,
        )
        if status is None:
            self.error_types[error.split(":", 1)[0] if error else "unknown"] += 1
        else:
            self.statuses[status] += 1
            self.latencies_ms.append(latency_ms)
        if config.keep_records:
            self.records.append(record)
        if self._on_post is not None:
            self._on_post(record)


async def _halt_when(halt: asyncio.Event, stop: asyncio.Event, duration_s: float | None) -> None:
    """Set halt when stop is set or duration_s has passed."""
    try:
        async with asyncio.timeout(duration_s):
            await stop.wait()
    except TimeoutError:
        pass  # the duration is over: halting is what a timeout means here
    halt.set()


async def simulate(
    config: SimulateConfig,
    on_post: Callable[[PostRecord], None] | None = None,
    stop: asyncio.Event | None = None,
) -> Summary:
    """Run config to its end (all sent, duration over, or stop set); on_post sees each POST.

    on_post runs in the event loop after each POST; if it raises, the run stops and the
    error propagates.
    """
    halt = asyncio.Event()
    stop = stop or asyncio.Event()
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=config.concurrency)
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        run = _Run(config, session, halt, stop, on_post)
        watcher = asyncio.create_task(_halt_when(halt, stop, config.duration_s))
        try:
            async with asyncio.TaskGroup() as group:
                for index in range(config.users):
                    group.create_task(run.user(index))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from failed
        finally:
            halt.set()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    latencies = sorted(run.latencies_ms)
    return Summary(
        run_id=run.run_id,
        planned=config.planned,
        posts=sum(run.statuses.values()) + sum(run.error_types.values()),
        statuses=dict(sorted(run.statuses.items())),
        errors=sum(run.error_types.values()),
        error_types=dict(run.error_types),
        p50_ms=_rounded(percentile(latencies, 50)),
        p99_ms=_rounded(percentile(latencies, 99)),
        elapsed_s=round(time.perf_counter() - started, 3),
        records=run.records,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
