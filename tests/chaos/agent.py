"""The chaos agent: seeded random faults, one lane per kind, until told to stop.

Lanes run side by side, each with its own generator derived from the seed, so a seed
replays the same sequence of faults per lane (their interleaving follows the clock):
- processors: SIGKILL one and restart it after a while, or SIGSTOP one longer than
  claim_idle and SIGCONT it (a stalled replica whose entries were claimed meanwhile);
- senders: SIGKILL one and restart it;
- redis: SIGKILL or SIGTERM Redis and start it again on the same port and AOF;
- graph: a burst of throttling or 5xx answers from one fake Graph API;
- bot: the bot turns slow for a while (sometimes slower than the handler timeout).
One lane disturbs one replica at a time, so at least one processor and one sender are
always healthy. The sleeps here are the faults' own durations, never waits for work.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.bot import RecordingBot
from tests.chaos.graph_control import script_graph
from tests.chaos.stack import Stack

Range = tuple[float, float]
THROTTLE = ((400, 4), (400, 613), (400, 32), (429, 4), (400, 80007))
TEMPORARY = ((500, 1), (500, 2), (503, 2), (502, 1))
CHECK_S = 0.5


@dataclass(frozen=True)
class ChaosPlan:
    """How often and how hard each lane strikes (seconds unless named otherwise)."""

    processor_gap_s: Range = (1.0, 3.0)
    processor_down_s: Range = (0.2, 1.5)
    stall_beyond_idle_ms: Range = (400, 1500)
    sender_gap_s: Range = (1.0, 3.0)
    sender_down_s: Range = (0.2, 1.5)
    redis_gap_s: Range = (6.0, 12.0)
    redis_down_s: Range = (0.3, 1.5)
    graph_gap_s: Range = (1.0, 4.0)
    graph_burst: Range = (3, 20)
    bot_gap_s: Range = (2.0, 6.0)
    bot_latency_ms: Range = (200, 1500)
    bot_slow_s: Range = (1.0, 3.0)
    lanes: frozenset[str] = frozenset({"processors", "senders", "redis", "graph", "bot"})


@dataclass
class ChaosLog:
    """What the agent did, for the verdict (sender kills) and the report (counts)."""

    counts: Counter[str] = field(default_factory=Counter)
    sender_kills: list[tuple[int, int]] = field(default_factory=list)
    """(slot, wall-clock ms) of every sender SIGKILL."""

    def line(self) -> str:
        """One line of counts."""
        return " ".join(f"{name}={n}" for name, n in sorted(self.counts.items()))


def _now_ms() -> int:
    return int(time.time() * 1000)


class ChaosAgent:
    """run(stop) strikes until stop is set; each strike it began is finished first."""

    def __init__(
        self, stack: Stack, bot: RecordingBot, seed: int, plan: ChaosPlan | None = None
    ) -> None:
        self.stack = stack
        self.bot = bot
        self.seed = seed
        self.plan = plan or ChaosPlan()
        self.log = ChaosLog()

    async def run(self, stop: asyncio.Event) -> None:
        """All lanes until stop; every strike begun is finished, the fakes are reset."""
        lanes: dict[str, Callable[[random.Random, asyncio.Event], Coroutine[Any, Any, None]]] = {
            "processors": self._processors,
            "senders": self._senders,
            "redis": self._redis,
            "graph": self._graph,
            "bot": self._bot,
        }
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch(stop))
                for name, lane in lanes.items():
                    if name in self.plan.lanes:
                        group.create_task(lane(random.Random(f"{self.seed}:{name}"), stop))
        finally:
            self.bot.latency_ms = 0
        for slot in range(len(self.stack.graphs)):
            await self._script(slot, [])

    async def _watch(self, stop: asyncio.Event) -> None:
        """Notice processes that exit on their own (crashes) while chaos goes on."""
        while not await _pause(CHECK_S, stop):
            self.stack.check()

    async def _processors(self, rng: random.Random, stop: asyncio.Event) -> None:
        plan, stack = self.plan, self.stack
        while not await _pause(rng.uniform(*plan.processor_gap_s), stop):
            slot = stack.processors[rng.randrange(len(stack.processors))]
            if rng.random() < 0.5:
                slot.kill()
                self.log.counts["processor_kills"] += 1
                await asyncio.sleep(rng.uniform(*plan.processor_down_s))
                slot.start()
            else:
                stall_ms = stack.config.claim_idle_ms + rng.uniform(*plan.stall_beyond_idle_ms)
                slot.freeze()
                self.log.counts["processor_stalls"] += 1
                await asyncio.sleep(stall_ms / 1000)
                slot.thaw()

    async def _senders(self, rng: random.Random, stop: asyncio.Event) -> None:
        plan, stack = self.plan, self.stack
        while not await _pause(rng.uniform(*plan.sender_gap_s), stop):
            index = rng.randrange(len(stack.senders))
            self.log.sender_kills.append((index, _now_ms()))
            stack.senders[index].kill()
            self.log.counts["sender_kills"] += 1
            await asyncio.sleep(rng.uniform(*plan.sender_down_s))
            stack.senders[index].start()

    async def _redis(self, rng: random.Random, stop: asyncio.Event) -> None:
        plan = self.plan
        while not await _pause(rng.uniform(*plan.redis_gap_s), stop):
            hard = rng.random() < 0.5
            await self.stack.restart_redis(hard=hard, down_s=rng.uniform(*plan.redis_down_s))
            self.log.counts["redis_kills" if hard else "redis_stops"] += 1

    async def _graph(self, rng: random.Random, stop: asyncio.Event) -> None:
        plan = self.plan
        while not await _pause(rng.uniform(*plan.graph_gap_s), stop):
            throttle = rng.random() < 0.5
            status, code = rng.choice(THROTTLE if throttle else TEMPORARY)
            error = {"status": status, "code": code, "count": int(rng.uniform(*plan.graph_burst)),
                     "message": "chaos"}  # fmt: skip
            await self._script(rng.randrange(len(self.stack.graphs)), [error])
            self.log.counts["graph_throttle_bursts" if throttle else "graph_5xx_bursts"] += 1

    async def _bot(self, rng: random.Random, stop: asyncio.Event) -> None:
        plan = self.plan
        while not await _pause(rng.uniform(*plan.bot_gap_s), stop):
            self.bot.latency_ms = int(rng.uniform(*plan.bot_latency_ms))
            self.log.counts["bot_slow"] += 1
            await asyncio.sleep(rng.uniform(*plan.bot_slow_s))
            self.bot.latency_ms = 0

    async def _script(self, slot: int, errors: list[dict[str, Any]]) -> None:
        await script_graph(self.stack.graph_url(slot), errors)


async def _pause(seconds: float, stop: asyncio.Event) -> bool:
    """Wait up to seconds; True when stop was set (the lane ends)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
