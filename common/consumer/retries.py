"""The consumer's local retry timers: entries it still owns in the PEL and will handle again.

Times are this process's monotonic clock in ms. Each held entry has two deadlines: when it
is due again, and when it must be touched (XCLAIM JUSTID to ourselves) so that its idle
time never reaches claim_idle_ms and another replica does not claim it while we hold it.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

from lull.common.clock import monotonic_ms
from lull.common.consumer.config import ConsumerConfig
from lull.common.consumer.handler import Entry
from lull.common.redis_conn import RedisClient

# Our clock and Redis's idle clock differ by the command's flight time; a local retry's
# XCLAIM asks for this much less idle time than we measured, so it does not fail on noise.
CLAIM_SLACK_MS = 10


Key = tuple[str, str]
"""(stream, entry id)"""


@dataclass(slots=True)
class Held:
    """One entry waiting for its local retry."""

    entry: Entry
    due_ms: float
    touched_ms: float
    """When Redis last reset the entry's idle time for us (reply time of the read or claim):
    the entry has been idle at least now - touched_ms unless someone else took it."""
    failures: int
    """Consecutive handler failures; > 0 means it is re-handled alone, with backoff."""

    @property
    def key(self) -> Key:
        """(stream, id)"""
        return self.entry.stream, self.entry.id


class LocalRetries:
    """A timer heap over held entries, with lazy removal of superseded timers."""

    def __init__(self, touch_every_ms: float) -> None:
        # No touching when claim_idle_ms is 0: any consumer may claim anything at once then.
        self._touch_every_ms = touch_every_ms if touch_every_ms > 0 else math.inf
        self._held: dict[Key, Held] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._scheduled: dict[Key, int] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def hold(self, entry: Entry, *, due_ms: float, touched_ms: float, failures: int) -> None:
        """Keep entry until due_ms (replacing any earlier hold of the same entry)."""
        held = Held(entry, due_ms, touched_ms, failures)
        self._held[held.key] = held
        self._schedule(held.key, min(due_ms, touched_ms + self._touch_every_ms))

    def actions(self, now_ms: float) -> tuple[list[Held], list[Held]]:
        """(due, to touch) at now_ms. Due entries are released; entries to touch stay held
        but unscheduled until touched() or defer() or forget() is called for them."""
        due: list[Held] = []
        touch: list[Held] = []
        while self._heap and self._heap[0][0] <= now_ms:
            _, seq, key = heapq.heappop(self._heap)
            if self._scheduled.get(key) != seq:
                continue  # superseded by a later schedule of the same entry
            del self._scheduled[key]
            held = self._held[key]
            if held.due_ms <= now_ms:
                del self._held[key]
                due.append(held)
            else:
                touch.append(held)
        return due, touch

    def touched(self, key: Key, touched_ms: float) -> None:
        """Our XCLAIM reset the entry's idle time at touched_ms."""
        held = self._held[key]
        held.touched_ms = touched_ms
        self._schedule(key, min(held.due_ms, touched_ms + self._touch_every_ms))

    def defer(self, key: Key, until_ms: float) -> None:
        """Look at the entry again at until_ms (a touch failed; try again after a backoff)."""
        self._schedule(key, min(self._held[key].due_ms, until_ms))

    def take(self, key: Key) -> Held | None:
        """Stop holding the entry and return its hold, None if it was not held."""
        self._scheduled.pop(key, None)
        return self._held.pop(key, None)

    def forget(self, key: Key) -> None:
        """Stop holding the entry (someone else owns it now, or it is gone)."""
        self._held.pop(key, None)
        self._scheduled.pop(key, None)

    def next_action_ms(self) -> float | None:
        """The earliest due or touch time, None when nothing is held."""
        while self._heap and self._scheduled.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def release_all(self) -> int:
        """Drop every hold (they stay pending in Redis for others to claim); returns how many."""
        count = len(self._held)
        self._held.clear()
        self._scheduled.clear()
        self._heap.clear()
        return count

    def _schedule(self, key: Key, at_ms: float) -> None:
        seq = next(self._seq)
        self._scheduled[key] = seq
        heapq.heappush(self._heap, (at_ms, seq, key))


async def claim_held(client: RedisClient, config: ConsumerConfig, held: list[Held]) -> list[object]:
    """XCLAIM JUSTID each held entry to ourselves, unless someone else touched it since.

    JUSTID leaves the delivery counter alone. The min-idle time is how long we have held
    the entry: if another consumer (or an XAUTOCLAIM) reset its idle time after we did, the
    claim returns nothing, and the entry is theirs. One result per entry: a non-empty list
    (still ours), an empty one (not ours any more, or deleted), or the command's error.
    """
    now = monotonic_ms()
    pipe = client.pipeline(transaction=False)
    for h in held:
        min_idle_ms = max(0, int(now - h.touched_ms) - CLAIM_SLACK_MS)
        pipe.xclaim(
            h.entry.stream, config.group, config.consumer, min_idle_ms, [h.entry.id], justid=True
        )
    return list(await pipe.execute(raise_on_error=False))


async def reread(client: RedisClient, held: list[Held]) -> list[Entry | None]:
    """Each held entry as the stream has it now (XRANGE id id); None where it was deleted."""
    pipe = client.pipeline(transaction=False)
    for h in held:
        pipe.xrange(h.entry.stream, h.entry.id, h.entry.id)
    ranges: list[Any] = await pipe.execute()
    return [
        replace(h.entry, fields=rows[0][1]) if rows else None
        for h, rows in zip(held, ranges, strict=True)
    ]
