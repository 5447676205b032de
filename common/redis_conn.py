"""Redis client construction: one place that sets timeouts for every network call."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect(url: str, *, timeout_s: float, max_connections: int = 64) -> aioredis.Redis:
    """A client whose every command and connect gives up after timeout_s."""
    # A blocking pool: under a burst of concurrent work a command waits (up to timeout_s)
    # for a free connection instead of failing at once with "Too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        max_connections=max_connections,
        timeout=timeout_s,
        health_check_interval=30,
        # A failed command surfaces to the caller, which decides (503, retry, claim later).
        retry_on_timeout=False,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
