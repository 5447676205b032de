"""The contract between the consumer loop and its handler: entries in, one outcome each out.

A handler returns these outcomes (they are values, not exceptions: raising one is a
TypeError at the raise) so that one place, the loop's settle step, decides what happens
next: ack, retry the entry later on this replica, dead-letter it, or wait for a Running one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisClusterException, RedisError, ResponseError


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as delivered to this consumer."""

    stream: str
    id: str
    fields: dict[bytes, bytes]
    times_delivered: int
    """Times the group delivered it (the PEL counter): 1 on a fresh read, more once claimed.
    A local RetryLater does not count."""


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Not now: handle this entry again after delay_ms, without counting a delivery."""

    delay_ms: int
    """Negative means as soon as possible (it is kept at 0)."""
    reason: str = "retry later"

    def __post_init__(self) -> None:
        object.__setattr__(self, "delay_ms", max(0, int(self.delay_ms)))


@dataclass(frozen=True, slots=True)
class Permanent:
    """Never: this entry cannot be handled; dead-letter it with the reason and ack it."""

    reason: str


Decided = RetryLater | Permanent | None
"""Per entry: None = done (ack), RetryLater = again after its delay, Permanent = dead-letter."""


class Running:
    """Still at work: the handler goes on with this entry in the background.

    `done` resolves to what was decided for the entry (or raises, as a handler would). Until
    then the loop holds the entry, keeps it claimed and reads on, so one slow entry (a slow
    bot) does not hold up the entries read after it. The entry is not handed out again
    meanwhile.
    """

    __slots__ = ("done",)

    def __init__(self, done: asyncio.Future[Decided]) -> None:
        self.done = done

    def __repr__(self) -> str:
        return f"Running({self.done!r})"


Outcome = Decided | Running
"""What a handler returns per entry: what it decided, or Running (it decides later)."""


class HandlerContractError(Exception):
    """The handler did not return one Outcome per entry."""


class EntryHandler(Protocol):
    """Handles the entries of one stream; returns one Outcome per entry, in order.

    Raising means "could not decide for any of them" (Redis down, a bug): the loop logs it
    and retries every entry locally, one by one, with capped exponential backoff.
    """

    async def __call__(self, stream: str, entries: list[Entry], /) -> list[Outcome]:
        """Handle entries (all from stream)."""


def check_outcomes(entries: list[Entry], outcomes: object) -> None:
    """Raise HandlerContractError unless outcomes is one Outcome per entry."""
    if not isinstance(outcomes, list) or len(outcomes) != len(entries):
        raise HandlerContractError(
            f"handler returned {type(outcomes).__name__} for {len(entries)} entries; "
            "expected a list with one outcome per entry"
        )
    for outcome in outcomes:
        if outcome is not None and not isinstance(outcome, RetryLater | Permanent | Running):
            raise HandlerContractError(f"handler returned {outcome!r} as an outcome")


def blames_the_entry(exc: BaseException) -> bool:
    """Whether a handler's exception can come from the entry itself (a poison entry).

    A bug hit by one input, or a Lua script that fails on it, fails the same way every
    time: such an entry is dead-lettered after max_deliveries attempts. A lost connection,
    a timeout or a Redis that refuses writes (OOM, READONLY, LOADING) fails every entry
    alike; those are retried until Redis is back, never dead-lettered for it.
    """
    if isinstance(exc, ResponseError):
        return "script" in str(exc).lower()  # "ERR user_script:…" / "Error running script"
    return not isinstance(exc, RedisError | RedisClusterException | OSError | TimeoutError)
