"""Load for the chaos run: `lull simulate` rounds, started one after another until time is up.

A round is one simulate() call: users_per_round people each typing a short burst. Rounds
overlap (a new one starts every round_every_s), rotate over the three platforms, and reuse
user_groups groups of user ids, so a conversation gets batch after batch (seq 1, 2, 3 ...)
as the run goes on. Every round has its own run id, so every mid of the run is unique.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from lull.common.conversation import PLATFORMS
from lull.ops.simulate import PostRecord, SimulateConfig, simulate
from tests.chaos.stack import APP_SECRET


@dataclass(frozen=True)
class LoadPlan:
    """How much traffic, for how long."""

    seconds: float
    users_per_round: int = 20
    messages_per_user: int = 3
    gap_ms: int = 100
    """Pause between one user's messages (simulate adds jitter); below LULL_WINDOW_MS, so a
    burst mostly lands in one window."""
    round_every_s: float = 0.5
    user_groups: int = 15
    """Distinct user-id groups per platform; users = users_per_round * user_groups * 3."""
    timeout_s: float = 5.0


@dataclass
class LoadResult:
    """Every POST of the run."""

    records: list[PostRecord] = field(default_factory=list)

    @property
    def accepted(self) -> set[str]:
        """Mids of the messages ingest answered 200 for."""
        return {mid for r in self.records if r.status == 200 for mid in r.mids}

    @property
    def posted(self) -> set[str]:
        """Mids of every message posted, whatever came back."""
        return {mid for r in self.records for mid in r.mids}

    def refused(self) -> int:
        """POSTs not answered 200 (503 while Redis restarts, timeouts): Meta would retry."""
        return sum(1 for r in self.records if r.status != 200)


async def run_load(plan: LoadPlan, url: str, seed: int) -> LoadResult:
    """Start a round every round_every_s until plan.seconds is over, then wait for them."""
    result = LoadResult()
    rounds: list[asyncio.Task[None]] = []
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < plan.seconds:
        config = SimulateConfig(
            url=url,
            app_secret=APP_SECRET,
            platform=PLATFORMS[n % len(PLATFORMS)],
            users=plan.users_per_round,
            messages_per_user=plan.messages_per_user,
            gap_ms=plan.gap_ms,
            timeout_s=plan.timeout_s,
            seed=seed * 1_000_003 + n,
            user_prefix=f"9{(n // len(PLATFORMS)) % plan.user_groups:03d}",
            run_id=f"s{seed}r{n}",
        )
        rounds.append(asyncio.create_task(_round(config, result)))
        n += 1
        # Pacing the rounds is the load's shape, not a wait for work.
        await asyncio.sleep(plan.round_every_s)
    await asyncio.gather(*rounds)
    return result


async def _round(config: SimulateConfig, result: LoadResult) -> None:
    summary = await simulate(config)
    result.records.extend(summary.records)
