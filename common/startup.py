"""Start-up steps that need Redis wait for it with backoff instead of crash-looping.

Each retry line names the Redis tried (password masked) and LULL_REDIS_URL, the setting an
operator fixes when the address is wrong: "connection refused" alone does not say where.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from lull.common.backoff import backoff_ms
from lull.common.redis_conn import REDIS_FAILURES, describe

log = structlog.get_logger("lull.startup")

FIRST_BACKOFF_MS = 100
MAX_BACKOFF_MS = 5000
RETRY_EVENT = "redis not reachable, retrying; check LULL_REDIS_URL"


async def until_redis_answers(
    step: Callable[[], Awaitable[None]],
    what: str,
    redis_url: str,
    stop: asyncio.Event | None = None,
) -> bool:
    """Run step until it succeeds (True) or stop is set (False); Redis errors back off."""
    failures = 0
    while stop is None or not stop.is_set():
        try:
            await step()
        except REDIS_FAILURES as exc:
            failures += 1
            delay_ms = backoff_ms(failures, FIRST_BACKOFF_MS, MAX_BACKOFF_MS)
            log.warning(
                RETRY_EVENT,
                redis=describe(redis_url),
                step=what,
                error=str(exc),
                backoff_ms=delay_ms,
            )
            await _sleep_or_stop(delay_ms / 1000, stop)
            continue
        if failures:
            log.info("redis answers", redis=describe(redis_url), step=what, failures=failures)
        return True
    return False


async def _sleep_or_stop(delay_s: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(delay_s)
        return
    # A stop during the backoff ends the wait at once, not up to 5 s later.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)
