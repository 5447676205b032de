"""Redis client construction: one place that sets timeouts for every network call."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal, TypeAlias, overload
from urllib.parse import urlsplit

import hiredis  # a dependency: redis[hiredis]
import redis._parsers.hiredis as redis_hiredis
import redis.asyncio as aioredis
from redis._parsers.hiredis import _AsyncHiredisParser
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.typing import EncodableT

RedisClient: TypeAlias = aioredis.Redis | RedisCluster
# What the hiredis reader returns while a reply is incomplete: a sentinel of redis-py's since
# 5.1 (RESP3 has a boolean false), False before (the lowest redis-py lull allows is 5.0.2).
_NOT_ENOUGH_DATA: Final[object] = getattr(redis_hiredis, "NOT_ENOUGH_DATA", False)
"""What connect() returns: one Redis, or a Redis Cluster client (LULL_REDIS_CLUSTER=1).

Code that takes a client from connect() annotates it with this; the two classes share the
command methods lull uses, and mypy checks every call against both."""

REDIS_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)
"""Failures of a Redis command that a later attempt may not have: log, back off, go on.
The cluster client raises RedisClusterException, not a RedisError, when no node answers
or the slot map is incomplete (a failover in progress)."""


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
        # hiredis's stub types the argument as a 1-tuple; it takes any length.
        try:
            return [hiredis.pack_command(args)]  # type: ignore[arg-type]
        except TypeError:
            # hiredis takes no bytearray: converting only then keeps a loop over every
            # argument (a tenth of the processor's CPU) off the common path.
            packed = tuple(bytes(a) if isinstance(a, bytearray) else a for a in args)
            return [hiredis.pack_command(packed)]  # type: ignore[arg-type]

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (redis-py's signature)
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        """The next reply: taken at once when it is in the buffer already, else redis-py's
        read under the socket timeout.

        A pipeline's replies mostly arrive in one socket read, and redis-py opens an asyncio
        timeout for each reply all the same: 5% of the sender's CPU. Only where redis-py
        would use the socket timeout (timeout None)."""
        parser: Any = self._parser
        reader = getattr(parser, "_reader", None)
        if (
            timeout is None
            and not push_request
            and reader is not None
            and isinstance(parser, _AsyncHiredisParser)
            and getattr(parser, "_connected", False)
        ):
            response = reader.gets(False) if disable_decoding else reader.gets()
            push_type = getattr(parser, "_hiredis_PushNotificationType", None)
            if push_type is not None and isinstance(response, push_type):
                # RESP3 push frame: handled as the parser does; the reply is read below.
                handle_push: Any = parser.handle_push_response
                await handle_push(response)
            elif response is not _NOT_ENOUGH_DATA:
                # The health-check time is left as the read that filled the buffer set it
                # (redis-py's own read, a moment ago): the clock read was 3% of the CPU.
                return await self._buffered(response, disconnect_on_error)
        # push_request only when given, as redis-py's own callers: older ones may not take it.
        extra: dict[str, Any] = {"push_request": push_request} if push_request else {}
        return await super().read_response(
            disable_decoding, timeout, disconnect_on_error=disconnect_on_error, **extra
        )

    async def _buffered(self, response: Any, disconnect_on_error: bool) -> Any:
        """A buffered reply, checked as the hiredis parser and redis-py's read_response do."""
        first = response[0] if type(response) is list and response else response
        if isinstance(first, RedisConnectionError):
            if disconnect_on_error:
                await self.disconnect(nowait=True)
            raise first
        if isinstance(response, ResponseError):
            raise response
        return response


# What uvloop says when asked to write to a transport it has already closed.
_CLOSED_HANDLE = "the handler is closed"


class _ClosedTransportIsConnectionError(AbstractConnection):
    """A write to a connection the peer just closed is a ConnectionError, on any loop.

    asyncio's own loop reports it as an OSError, which redis-py turns into ConnectionError,
    a Redis failure every caller retries. uvloop raises RuntimeError instead; a sender
    crashed on it in a chaos run while Redis restarted.
    """

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        """Send command; a closed transport raises ConnectionError, as a reset socket does."""
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:
            if _CLOSED_HANDLE not in str(exc):
                raise
            # redis-py has disconnected already: the next command connects anew.
            raise RedisConnectionError(f"Error while writing to Redis: {exc}") from exc


class _TcpConnection(_ClosedTransportIsConnectionError, _HiredisPackingConnection):
    """redis:// connections."""


class _TlsConnection(_ClosedTransportIsConnectionError, SSLConnection):
    """rediss:// connections."""


class _UnixConnection(_ClosedTransportIsConnectionError, UnixDomainSocketConnection):
    """unix:// connections."""


_CONNECTION_CLASSES: dict[str, type[AbstractConnection]] = {
    "redis": _TcpConnection,
    "rediss": _TlsConnection,
    "unix": _UnixConnection,
}


@overload
def connect(
    url: str, *, timeout_s: float, max_connections: int = 64, cluster: Literal[False] = False
) -> aioredis.Redis: ...


@overload
def connect(
    url: str, *, timeout_s: float, max_connections: int = 64, cluster: bool
) -> RedisClient: ...


def connect(
    url: str, *, timeout_s: float, max_connections: int = 64, cluster: bool = False
) -> RedisClient:
    """A client whose every command and connect gives up after timeout_s.

    cluster: url names any node of a Redis Cluster; the client finds the others.
    """
    if cluster:
        return _connect_cluster(url, timeout_s=timeout_s, max_connections=max_connections)
    options: dict[str, Any] = {}
    connection_class = _CONNECTION_CLASSES.get(urlsplit(url).scheme)
    if connection_class is not None:  # another scheme: redis-py's own error names it
        options["connection_class"] = connection_class
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


def _connect_cluster(url: str, *, timeout_s: float, max_connections: int) -> RedisCluster:
    if urlsplit(url).scheme == "unix":
        raise ValueError("Redis Cluster needs a redis:// or rediss:// URL, not unix://")
    return RedisCluster.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        # Per node. The cluster client cannot wait for a free connection as the blocking
        # pool above does: past the cap a command fails at once (MaxConnectionsError), so
        # the cap is set well above what a service's concurrency asks of one node.
        max_connections=2 * max_connections,
        health_check_interval=30,
        # As for one Redis: a failed command surfaces to the caller, which decides. MOVED
        # and ASK are still followed, and the next command after a connection error
        # refreshes the slot map.
        retry=Retry(NoBackoff(), 0),
    )


def describe(url: str) -> str:
    """The URL with its password masked, for logs: redis://:****@host:6379/0.

    A user name before a colon is kept (it tells which ACL user is tried); a lone user info
    without a colon is masked too, since some write the password there."""
    if "@" not in url:
        return url
    scheme, separator, rest = url.rpartition("://")
    if not separator:
        scheme, rest = "", url
    userinfo, host = rest.rsplit("@", 1)
    user, colon, _password = userinfo.partition(":")
    masked = f"{user}:****" if colon else "****"
    return f"{scheme}{separator}{masked}@{host}"
