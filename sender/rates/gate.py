"""Taking units of the rate limits shared by every replica (sender/rates/rate.py) for one
delivery: a slot close enough is reserved and slept for, a later one sends the batch back
to come again at its turn. Right before the unit is used its use is recorded (use): a unit
that comes late waits there rather than bunch with the ones after it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from lull.common.consumer import RetryLater
from lull.sender.metrics import SenderMetrics
from lull.sender.rates.rate import Grant, Rate, RateLimiter, Turns

# A delivery reserves a rate-limit slot up to this far ahead and sleeps until it, holding
# one of LULL_SENDER_CONCURRENCY meanwhile (so a limit of R/s keeps up to R/4 of them). A
# later slot is not reserved: the batch is retried at its turn (sender/rates/rate.py: Turns)
# half a horizon early, which leaves the consumer loop that long to bring it back in time.
RATE_HORIZON_MS = 250


@dataclass
class RateGate:
    """One replica's way through the shared limits."""

    limiter: RateLimiter
    metrics: SenderMetrics
    turns: Turns = field(default_factory=Turns)

    async def take(self, scope: str, key: str, rate: Rate) -> Grant:
        """One unit of a limit: taken now, or at a slot within RATE_HORIZON_MS (slept until
        here), or not taken."""
        grant = await self.limiter.acquire(key, rate, horizon_ms=RATE_HORIZON_MS)
        if grant.wait_ms > 0:
            self.metrics.rate_waits.labels(scope).inc()
            if grant.taken:
                await asyncio.sleep(grant.wait_ms / 1000)
        return grant

    async def use(self, scope: str, key: str, rate: Rate) -> None:
        """Record the use of a unit taken, right before it is used; while the limit's last
        PERIOD already holds its count (units used late after a stall), wait for room."""
        while (wait_ms := await self.limiter.use(key, rate)) > 0:
            self.metrics.rate_late.labels(scope).inc()
            await asyncio.sleep(wait_ms / 1000)

    def come_back(self, key: str, rate: Rate, grant: Grant, reason: str) -> RetryLater:
        """Retry at the batch's turn, half a horizon early: in time to reserve a slot."""
        turn_ms = self.turns.take(key, rate, grant.wait_ms, time.monotonic() * 1000)
        return RetryLater(round(turn_ms) - RATE_HORIZON_MS // 2, reason)
