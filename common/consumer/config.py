"""How one consumer reads its group: ConsumerConfig, the replica's name, the client check."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any, NoReturn

from redis.asyncio.cluster import RedisCluster

from lull.common.redis_conn import RedisClient

# A blocked read answers after block_ms plus a round trip; the socket must wait longer.
BLOCK_MARGIN_MS = 250


def default_consumer_name() -> str:
    """hostname-pid-random: unique per process start, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ConsumerConfig:
    """How one consumer reads its group; validated at construction."""

    streams: list[str]
    """Streams read with one XREADGROUP; each gets the group, created at id 0."""
    group: str
    """Consumer-group name, the same on every replica."""
    dead_stream: str
    """Where Permanent and over-delivered entries go, with metadata fields `_*`."""
    consumer: str = field(default_factory=default_consumer_name)
    """This replica's name in the group: unique per process, so restarts never collide."""
    read_count: int = 100
    """Entries per XREADGROUP (per stream), and per XAUTOCLAIM page."""
    block_ms: int = 100
    """XREADGROUP BLOCK: short, so a stop request is noticed within it."""
    claim_interval_ms: int = 5000
    """How often the claim pass (claim, gauges, trim, consumer expiry) runs."""
    claim_idle_ms: int = 30_000
    """An entry pending this long with another consumer is presumed abandoned and claimed."""
    claim_max_pages: int = 10
    """XAUTOCLAIM pages (of read_count) per stream per claim pass: bounds one pass's work."""
    max_deliveries: int = 5
    """An entry claimed with more deliveries than this is dead-lettered, not handled."""
    consumer_expire_ms: int = 3_600_000
    """Consumers idle this long that hold nothing are removed from the group, so that
    XINFO CONSUMERS does not grow with every restart."""
    error_backoff_ms: int = 100
    """First delay after a handler or Redis failure; doubles per consecutive failure."""
    error_backoff_max_ms: int = 10_000
    """Cap of that doubling."""
    max_local_retries: int = 1000
    """Entries held for a local retry at most; at the cap the loop stops reading new
    entries until some are due (backpressure, e.g. while a rate limit holds)."""
    trim: bool = True
    """Run trim_acknowledged on every stream in the claim pass."""
    read_ahead: bool = False
    """Read the next entries while the handler works on the last read: up to two reads in
    the handler at once, so the handler's Redis time overlaps the next read's Python time.
    Only for a handler that keeps its own Redis writes in read order when two calls overlap
    (the processor's does); an entry is still acked only after its own handling."""

    def __post_init__(self) -> None:
        if not self.streams or any(not s for s in self.streams):
            _invalid("streams", self.streams, "at least one non-empty stream name")
        if len(set(self.streams)) != len(self.streams):
            _invalid("streams", self.streams, "no stream twice")
        for name in ("group", "dead_stream", "consumer"):
            if not getattr(self, name):
                _invalid(name, getattr(self, name), "a non-empty string")
        if self.dead_stream in self.streams:
            _invalid("dead_stream", self.dead_stream, "a stream this consumer does not read")
        minimums = {
            "read_count": 1,
            # BLOCK 0 would block forever and a stop could not be noticed.
            "block_ms": 1,
            "claim_interval_ms": 1,
            # 0 claims every pending entry at once: only tests want that.
            "claim_idle_ms": 0,
            "claim_max_pages": 1,
            "max_deliveries": 1,
            "consumer_expire_ms": 0,
            "error_backoff_ms": 1,
            "error_backoff_max_ms": self.error_backoff_ms,
            "max_local_retries": 1,
        }
        for name, minimum in minimums.items():
            if getattr(self, name) < minimum:
                _invalid(name, getattr(self, name), f"an integer >= {minimum}")


def _invalid(name: str, value: object, allowed: str) -> NoReturn:
    raise ValueError(f"ConsumerConfig.{name}={value!r}: {allowed}")


def check_client(client: RedisClient, block_ms: int) -> None:
    """Every call must time out, and a blocked read must not time out before Redis answers."""
    kwargs: dict[str, Any]
    if isinstance(client, RedisCluster):
        kwargs = client.get_connection_kwargs()  # what every node's connections get
    else:
        kwargs = getattr(client.connection_pool, "connection_kwargs", {})
    timeout_s = kwargs.get("socket_timeout")
    if timeout_s is None or timeout_s * 1000 < block_ms + BLOCK_MARGIN_MS:
        raise ValueError(
            f"the Redis client's socket_timeout ({timeout_s} s) must exceed block_ms "
            f"({block_ms}) by {BLOCK_MARGIN_MS} ms: use common.redis_conn.connect"
        )
    if kwargs.get("decode_responses"):
        raise ValueError("the consumer needs a client that returns bytes (decode_responses off)")
