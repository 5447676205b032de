"""Start-up steps that need Redis wait for it with backoff instead of crash-looping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from lull.common.backoff import backoff_ms
from lull.common.redis_conn import REDIS_FAILURES

log = structlog.get_logger("lull.startup")

FIRST_BACKOFF_MS = 100
MAX_BACKOFF_MS = 5000


async def until_redis_answers(
    step: Callable[[], Awaitable[None]], what: str, stop: asyncio.Event | None = None
) -> bool:
    """Run step until it succeeds (True) or stop is set (False); Redis errors back off."""
    failures = 0
    while stop is None or not stop.is_set():
        try:
            await step()
        except REDIS_FAILURES as exc:
            failures += 1
            delay_ms = backoff_ms(failures, FIRST_BACKOFF_MS, MAX_BACKOFF_MS)
            log.warning("redis not ready, retrying", step=what, error=str(exc), backoff_ms=delay_ms)
            await asyncio.sleep(delay_ms / 1000)
            continue
        return True
    return False
