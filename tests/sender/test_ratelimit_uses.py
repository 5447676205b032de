"""The log of a limiter's uses (lua/rate_use.lua through RateLimiter.use_at), on a virtual
clock through the real Lua script: units used late after a stall wait for room instead of
bunching with the on-time ones after them, so no second holds more than the rate, the
first one included, and the steady rate stays the configured one.

The simulations model what sender/deliver.py does: a caller reserves a slot (rate_gate),
sleeps until it, and records its use right before the send (RateGate.use), waiting and
asking again while the log says so.
"""

from __future__ import annotations

import heapq
import math
import random

import pytest
import redis.asyncio as aioredis

from lull.sender.rates.gate import RATE_HORIZON_MS
from lull.sender.rates.rate import Rate, RateLimiter, parse_rate
from tests.sender.ratelimit_support import most_in_any_span

T0 = 1_700_000_000_000
SECONDS = 6
STALL_AT_MS = 1_500
STALL_MS = 120


@pytest.fixture
async def limiter(redis: aioredis.Redis) -> RateLimiter:
    limiter = RateLimiter(redis)
    await limiter.load_scripts()
    return limiter


async def _slots(limiter: RateLimiter, key: str, rate: Rate) -> list[int]:
    """A backlog from a quiet start: every slot reserved over SECONDS, each asked for as
    soon as it is within the horizon."""
    slots: list[int] = []
    now, end = T0, T0 + SECONDS * 1000
    while now < end:
        grant = await limiter.acquire_at(key, rate, 1, now, horizon_ms=RATE_HORIZON_MS)
        if grant.taken:
            slots.append(now + grant.wait_ms)
        else:
            now += grant.wait_ms - RATE_HORIZON_MS
    return [t for t in slots if t < end]


def _woken(slots: list[int], rate: Rate, seed: int) -> list[int]:
    """When each sleeper wakes: a ms or two after its slot, but every one whose slot fell in
    a stall of the replica (STALL_MS, three slots at least) only when the stall ends."""
    rng = random.Random(seed)
    stall_start = T0 + STALL_AT_MS
    stall_end = stall_start + max(STALL_MS, math.ceil(3 * rate.interval_ms))
    return [
        stall_end + rng.randint(0, 2) if stall_start <= t < stall_end else t + rng.randint(0, 2)
        for t in slots
    ]


async def _used(limiter: RateLimiter, key: str, rate: Rate, woken: list[int]) -> list[int]:
    """The time of each use when every woken caller records it first (RateGate.use): a
    caller told to wait asks again when told."""
    waiting = [(t, n) for n, t in enumerate(woken)]
    heapq.heapify(waiting)
    used: list[int] = []
    while waiting:
        now, n = heapq.heappop(waiting)
        wait_ms = await limiter.use_at(key, rate, now)
        if wait_ms == 0:
            used.append(now)
        else:
            heapq.heappush(waiting, (now + wait_ms, n))
    return sorted(used)


@pytest.mark.parametrize("text", ["200/s", "80/s", "10/s", "10/1s:3"])
async def test_late_units_wait_for_room_and_no_second_holds_more_than_the_rate(
    limiter: RateLimiter, namespace: str, text: str
) -> None:
    rate = parse_rate(text)
    assert rate is not None
    most = rate.count + rate.burst - 1
    slots = await _slots(limiter, f"{namespace}:rl:{text}", rate)
    woken = _woken(slots, rate, seed=len(text))
    # Sent as woken (0.2's sender), the stall's units go out together and the slots after
    # them on time: the second that holds them is over the rate.
    assert most_in_any_span(woken, rate.period_ms) > most
    used = await _used(limiter, f"{namespace}:rl:{text}", rate, woken)
    assert len(used) == len(slots)
    # Any span of PERIOD holds at most N (N + B - 1 with a burst), and so does the first one.
    assert most_in_any_span(used, rate.period_ms) <= most
    first = [t for t in used if t < used[0] + rate.period_ms]
    assert len(first) <= most
    # The margin left for the request's way to Meta: half of the 1% slack.
    assert most_in_any_span(used, int(rate.period_ms + rate.late_ms // 2)) <= most
    # Steady: after the first PERIOD, the configured rate (lull's 1% slack included), the
    # stall's lost time aside: within 3% over the run.
    steady = [t for t in used if t >= used[0] + rate.period_ms]
    per_period = (len(steady) - 1) * rate.period_ms / (steady[-1] - steady[0])
    assert per_period == pytest.approx(rate.count, rel=0.03)


@pytest.mark.parametrize("text", ["200/s", "10/1s:3", "10/1m:3"])
async def test_units_used_at_their_slots_never_wait(
    limiter: RateLimiter, namespace: str, text: str
) -> None:
    # The log only holds back units that came late: the slots are spaced wider than the span
    # it counts over, the burst of a quiet start included.
    rate = parse_rate(text)
    assert rate is not None
    key = f"{namespace}:rl:{text}"
    slots = await _slots(limiter, key, rate)
    waits = [await limiter.use_at(key, rate, t) for t in slots]
    assert waits == [0] * len(slots)


async def test_a_full_span_says_when_the_oldest_use_leaves_it(
    limiter: RateLimiter, namespace: str
) -> None:
    rate, key = Rate(3, 1000, 1), f"{namespace}:rl:log"
    span_ms = 1000 + 5  # PERIOD and half of its 1%
    assert [await limiter.use_at(key, rate, T0 + t) for t in (0, 10, 20)] == [0, 0, 0]
    # A refusal records nothing: asking again later gets the same answer, counted down.
    assert await limiter.use_at(key, rate, T0 + 30) == span_ms - 30
    assert await limiter.use_at(key, rate, T0 + 500) == span_ms - 500
    assert await limiter.use_at(key, rate, T0 + span_ms) == 0
    assert await limiter.use_at(key, rate, T0 + span_ms) == 10
