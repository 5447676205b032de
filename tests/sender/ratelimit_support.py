"""What the rate-limiter tests share: the limiter's answer in its horizon-0 form, and the
count a per-period limit is judged by."""

from __future__ import annotations

import bisect

from lull.sender.rates.rate import Rate, RateLimiter


async def ask(limiter: RateLimiter, key: str, rate: Rate, cost: int, now_ms: int) -> int:
    """acquire_at without a horizon: 0 when taken now, else the wait (nothing taken)."""
    grant = await limiter.acquire_at(key, rate, cost, now_ms)
    # Without a horizon nothing is ever reserved for later.
    assert grant.taken == (grant.wait_ms == 0), grant
    return grant.wait_ms


def most_in_any_span(times_ms: list[int] | list[float], span_ms: int) -> int:
    """The most units in any span [t, t + span_ms) (the busiest window, wherever it falls)."""
    ordered = sorted(times_ms)
    return max(
        (bisect.bisect_left(ordered, t + span_ms) - i for i, t in enumerate(ordered)), default=0
    )
