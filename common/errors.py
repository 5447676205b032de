"""Typed outcomes a handler reports for one entry when it did not finish it.

A handler returns these (it does not raise them) so that one place, the consumer loop,
decides what happens next: retry the entry later on this replica, or dead-letter it.
"""

from __future__ import annotations


class RetryLater(Exception):
    """Not now: handle this entry again after delay_ms, without counting a delivery."""

    def __init__(self, delay_ms: int, reason: str = "retry later") -> None:
        super().__init__(f"{reason} (in {delay_ms} ms)")
        # A negative delay would be due in the past; it means "as soon as possible".
        self.delay_ms = max(0, int(delay_ms))
        self.reason = reason


class Permanent(Exception):
    """Never: this entry cannot be handled; dead-letter it with the reason and ack it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def blames_the_entry(exc: BaseException) -> bool:
    """Whether a handler's exception can come from the entry itself (a poison entry).

    A bug hit by one input, or a Lua script that fails on it, fails the same way every
    time: such an entry is dead-lettered after max_deliveries attempts. A lost connection,
    a timeout or a Redis that refuses writes (OOM, READONLY, LOADING) fails every entry
    alike; those are retried until Redis is back, never dead-lettered for it.
    """
    # Imported here: this module defines the outcomes and must stay free of client imports.
    from redis.exceptions import RedisClusterException, RedisError, ResponseError  # noqa: PLC0415

    if isinstance(exc, ResponseError):
        return "script" in str(exc).lower()  # "ERR user_script:…" / "Error running script"
    return not isinstance(exc, RedisError | RedisClusterException | OSError | TimeoutError)
