"""Rate limits shared by every sender replica: one GCRA limiter per key, kept in Redis.

`N/PERIOD` spaces units evenly, one every PERIOD / N and 1% (SLACK), so no span of PERIOD
holds more than N, not even the first one after a quiet spell, even when each unit is used
up to 1% of PERIOD after its slot. `N/PERIOD:B` lets B go back to back after a quiet spell,
then one per interval: any span of w ms holds at most B - 1 + ceil(w / interval) units, so
the first PERIOD after a quiet spell may hold N + B - 1. (0.1 read a rate without a burst
as B = N: 80/s let 159 through in the first second.)

A slot bounds when a unit may be used, not when it is: a replica that stalls (a busy host)
wakes every caller whose slot passed meanwhile at once, and the slots after them come on
time; 209 sends went out in one second at 200/s. So a unit's use is also recorded, on the
Redis clock, right before the send (RateLimiter.use): the use waits while the last PERIOD
and a margin (half the 1%) already holds N + B - 1 uses. Units used on time never wait
there (the slots are spaced wider than that); late ones queue instead of bunching.

A caller may reserve: when its units fit within a horizon it gets a slot, exactly one
interval after the previous one, and waits until it; later callers get the slot after. A
busy limiter so runs at its rate however late each caller comes back (without reservations,
every unit lost the time its caller took to come back). An unused reservation (a crash, a
send that never happens) only leaves its slot empty: it errs on the side of the API.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from lull.common.redis_conn import RedisClient
from lull.common.store.rate_limits import RateLimitStore

MAX_COUNT = 1_000_000
MAX_PERIOD_MS = 24 * 3_600_000
RATE_FORMAT = (
    "off, or N/PERIOD[:BURST] with N from 1 to 1000000, PERIOD a unit ms, s, m or h with an "
    "optional whole multiple, up to 24h (500ms, s, 1m, 2h), and BURST from 1 to N, "
    "1 when left out (80/s, 10/1m:3)"
)

MAX_USE_LOG = 10_000
"""A limit of more units than this per PERIOD keeps no log of its uses (its memory grows
with N + B - 1): its slots alone bound it."""

SLACK = 100
"""Units are spaced PERIOD / N and 1% (PERIOD / SLACK over N units) apart: N units then
never fall within one PERIOD even when each is used up to that 1% after its slot (a
replica busy for a moment, a timer's resolution, the send's own start). Spaced exactly,
a unit a millisecond late would share a period with the N after it."""

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
# ASCII digits only: int() would also take other scripts' digits, which no one means here.
_RATE = re.compile(r"([0-9]+)/([0-9]*)(ms|s|m|h)(?::([0-9]+))?")


@dataclass(frozen=True, slots=True)
class Rate:
    """count units per period_ms, one per interval_ms; after a quiet spell, burst of them
    back to back (burst 1: evenly spaced, never more than count in any period_ms)."""

    count: int
    period_ms: int
    burst: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_COUNT:
            raise ValueError(f"count {self.count} is not from 1 to {MAX_COUNT}")
        if not 1 <= self.period_ms <= MAX_PERIOD_MS:
            raise ValueError(f"period {self.period_ms} ms is not from 1 ms to 24h")
        if not 1 <= self.burst <= self.count:
            raise ValueError(f"burst {self.burst} is not from 1 to the count {self.count}")

    @property
    def interval_ms(self) -> float:
        """The spacing of units (once the burst is spent): PERIOD / N, and 1% more."""
        return self.period_ms * (SLACK + 1) / (SLACK * self.count)

    @property
    def late_ms(self) -> float:
        """How long after its slot a unit may be used, and no PERIOD hold more than N (more
        than N + B - 1 with a burst): the 1%, PERIOD / SLACK."""
        return self.period_ms / SLACK


def parse_rate(text: str) -> Rate | None:
    """The Rate `N/PERIOD[:BURST]` names, None for `off`; ValueError says what is accepted."""
    cleaned = text.strip().lower()
    if cleaned == "off":
        return None
    match = _RATE.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"{text!r} is not a rate; expected {RATE_FORMAT}")
    count, multiple, unit, burst = match.groups()
    try:
        return Rate(
            count=int(count),
            period_ms=int(multiple or "1") * _UNIT_MS[unit],
            # No burst: evenly spaced, so no PERIOD holds more than N (Meta counts WhatsApp
            # throughput per second, and answers 130429 above it).
            burst=int(burst or "1"),
        )
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}; expected {RATE_FORMAT}") from None


def _interval_us(rate: Rate) -> int:
    # Rounded up: a limiter that cannot be exact errs on the side of the API it protects.
    return -(-rate.period_ms * 1000 * (SLACK + 1) // (SLACK * rate.count))


@dataclass(frozen=True, slots=True)
class Grant:
    """A limiter's answer: the units taken (at once, or at a reserved slot), or not taken."""

    taken: bool
    wait_ms: int
    """Taken: the ms until the reserved slot (0: at once). Not taken: the ms until the units
    could be taken, if no one else took them first."""


class RateLimiter:
    """GCRA limiters in Redis, one per key, all replicas on the one Redis clock."""

    def __init__(self, client: RedisClient) -> None:
        self._store = RateLimitStore(client)

    async def load_scripts(self) -> None:
        """Register the script with Redis (SCRIPT LOAD is idempotent)."""
        await self._store.load_scripts()

    async def acquire(self, key: str, rate: Rate, cost: int = 1, *, horizon_ms: int = 0) -> Grant:
        """Take cost units now, or reserve them at a slot up to horizon_ms ahead (the caller
        must not use them before it), or learn how long until they could be taken."""
        return await self._evalsha(key, rate, cost, "", horizon_ms)

    async def acquire_at(
        self, key: str, rate: Rate, cost: int, now_ms: int, *, horizon_ms: int = 0
    ) -> Grant:
        """acquire on a virtual clock: now_ms stands in for Redis TIME (tests)."""
        return await self._evalsha(key, rate, cost, now_ms, horizon_ms)

    async def use(self, key: str, rate: Rate) -> int:
        """Record that a unit taken of key is used now, 0; or the ms until a use fits, when
        the last PERIOD (and half of late_ms) already holds N + B - 1 uses (nothing recorded:
        wait, then ask again)."""
        return await self._use(key, rate, "")

    async def use_at(self, key: str, rate: Rate, now_ms: int) -> int:
        """use on a virtual clock: now_ms stands in for Redis TIME (tests)."""
        return await self._use(key, rate, now_ms)

    async def _use(self, key: str, rate: Rate, now_ms: int | str) -> int:
        most = rate.count + rate.burst - 1
        if most > MAX_USE_LOG:
            return 0
        # Units used on time are spaced 1% wider than PERIOD / N: half of that is left as a
        # margin for what follows the record (the request on its way to Meta).
        span_ms = math.ceil(rate.period_ms + rate.late_ms / 2)
        return await self._store.use(key, most=most, span_ms=span_ms, now_ms=now_ms)

    async def _evalsha(
        self, key: str, rate: Rate, cost: int, now_ms: int | str, horizon_ms: int
    ) -> Grant:
        if not 1 <= cost <= rate.burst:
            # More than the burst would be refused forever: fail loudly instead of waiting.
            raise ValueError(f"cost {cost} is not from 1 to the burst of {rate}")
        if horizon_ms < 0:
            raise ValueError(f"horizon {horizon_ms} ms is negative")
        taken, wait_ms = await self._store.take(
            key,
            interval_us=_interval_us(rate),
            burst=rate.burst,
            cost=cost,
            now_ms=now_ms,
            horizon_us=horizon_ms * 1000,
        )
        return Grant(taken=taken, wait_ms=wait_ms)


@dataclass
class Turns:
    """When the callers this replica sent away from a limiter should come back: per key, in
    the order they were sent away, one interval apart.

    A limiter tells every caller it refuses the same thing: when the next unit could be
    free. A backlog of a thousand batches for one account would all come back then, one
    would get a slot and the rest be sent away again, over and over. Given turns, they come
    back about as fast as the limiter can serve them, and each is usually sent away once.
    Only the time of the last turn given is kept per key; a turn never taken (the batch was
    claimed by another replica meanwhile) only delays the turns after it.
    """

    max_keys: int = 4096
    _last_ms: dict[str, float] = field(default_factory=dict)

    def take(self, key: str, rate: Rate, wait_ms: int, now_ms: float) -> float:
        """The ms from now_ms until the turn of a caller told the unit could be free in
        wait_ms: that time, or one interval after the last turn given for key, if later."""
        last_ms = self._last_ms.get(key)
        turn_ms = now_ms + wait_ms
        if last_ms is not None:
            turn_ms = max(turn_ms, last_ms + rate.interval_ms)
        self._last_ms[key] = turn_ms
        if len(self._last_ms) > self.max_keys:
            # Turns past are of no use; if every key has one to come, forgetting them all
            # only brings callers back sooner, as if there were no turns.
            self._last_ms = {k: t for k, t in self._last_ms.items() if t > now_ms}
            if len(self._last_ms) > self.max_keys:
                self._last_ms = {key: turn_ms}
        return turn_ms - now_ms
