"""Rate limits shared by every sender replica: one GCRA limiter per key, kept in Redis.

`N/PERIOD` allows N per PERIOD sustained, and up to N back to back after a quiet PERIOD;
`N/PERIOD:B` caps the run at B. GCRA bounds any window of w ms to at most
B + w / interval units: a steady rate, not a fixed-window count (right after a quiet spell,
one PERIOD can hold B + N - 1).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from redis.exceptions import NoScriptError

from lull.common.lua import read_lua
from lull.common.redis_conn import RedisClient

MAX_COUNT = 1_000_000
MAX_PERIOD_MS = 24 * 3_600_000
RATE_FORMAT = (
    "off, or N/PERIOD[:BURST] with N from 1 to 1000000, PERIOD a unit ms, s, m or h with an "
    "optional whole multiple, up to 24h (500ms, s, 1m, 2h), and BURST from 1 to N, "
    "N when left out (80/s, 10/1m:3)"
)

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
# ASCII digits only: int() would also take other scripts' digits, which no one means here.
_RATE = re.compile(r"([0-9]+)/([0-9]*)(ms|s|m|h)(?::([0-9]+))?")


@dataclass(frozen=True, slots=True)
class Rate:
    """count units per period_ms sustained, at most burst of them back to back."""

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
        """The spacing of units once the burst is spent."""
        return self.period_ms / self.count


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
            burst=int(count if burst is None else burst),
        )
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}; expected {RATE_FORMAT}") from None


def _interval_us(rate: Rate) -> int:
    # Rounded up: a limiter that cannot be exact errs on the side of the API it protects.
    return -(-rate.period_ms * 1000 // rate.count)


class RateLimiter:
    """GCRA limiters in Redis, one per key, all replicas on the one Redis clock."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._source = read_lua("sender", "rate_limit")
        self._sha = hashlib.sha1(self._source.encode()).hexdigest()  # noqa: S324  (Redis's id)

    async def load(self) -> None:
        """Register the script with Redis (SCRIPT LOAD is idempotent)."""
        await self._client.script_load(self._source)

    async def acquire(self, key: str, rate: Rate, cost: int = 1) -> int:
        """0 when cost units were taken now, else the ms until they could be (none taken)."""
        return await self._evalsha(key, rate, cost, "")

    async def acquire_at(self, key: str, rate: Rate, cost: int, now_ms: int) -> int:
        """acquire on a virtual clock: now_ms stands in for Redis TIME (tests)."""
        return await self._evalsha(key, rate, cost, now_ms)

    async def _evalsha(self, key: str, rate: Rate, cost: int, now_ms: int | str) -> int:
        if not 1 <= cost <= rate.burst:
            # More than the burst would be refused forever: fail loudly instead of waiting.
            raise ValueError(f"cost {cost} is not from 1 to the burst of {rate}")
        args = (_interval_us(rate), rate.burst, cost, now_ms)
        try:
            wait_ms = await self._client.evalsha(self._sha, 1, key, *args)
        except NoScriptError:
            # Redis restarted and forgot the script; NOSCRIPT ran nothing, so calling again is safe.
            await self.load()
            wait_ms = await self._client.evalsha(self._sha, 1, key, *args)
        return int(wait_ms)
