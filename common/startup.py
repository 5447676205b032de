"""Start-up steps that need Redis wait for it with backoff instead of crash-looping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from common.consumer_types import REDIS_FAILURES

log = structlog.get_logger("lull.startup")

FIRST_BACKOFF_MS = 100
MAX_BACKOFF_MS = 5000


async def until_redis_answers(
    step: Callable[[], Awaitable[None]], what: str, stop: asyncio.Event | None = None
) -> bool:
    """Run step until it succeeds (True) or stop is set (False); Redis errors back off."""
    backoff_ms = FIRST_BACKOFF_MS
    while stop is None or not stop.is_set():
        try:
            await step()
        except REDIS_FAILURES as exc:
            log.warning(
                "redis not ready, retrying", step=what, error=str(exc), backoff_ms=backoff_ms
            )
            await asyncio.sleep(backoff_ms / 1000)
            backoff_ms = min(MAX_BACKOFF_MS, backoff_ms * 2)
            continue
        return True
    return False
