"""Redis client construction: one place that sets timeouts for every network call."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import hiredis  # a dependency: redis[hiredis]
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.typing import EncodableT


class _HiredisPackingConnection(Connection):
    """Packs commands in C with hiredis, as redis-py's sync client already does.

    The asyncio client packs in Python: with ~20 arguments per EVALSHA that was over a
    third of the processor's CPU time.
    """

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        """One buffer holding the RESP encoding of args."""
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        packed = tuple(bytes(a) if isinstance(a, bytearray) else a for a in args)
        # hiredis's stub types the argument as a 1-tuple; it takes any length.
        return [hiredis.pack_command(packed)]  # type: ignore[arg-type]


def connect(url: str, *, timeout_s: float, max_connections: int = 64) -> aioredis.Redis:
    """A client whose every command and connect gives up after timeout_s."""
    options: dict[str, Any] = {}
    if urlsplit(url).scheme == "redis":
        options["connection_class"] = _HiredisPackingConnection
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
        **options,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
