"""One chaos run: stack up, load plus seeded chaos, chaos off, drain, verdict."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from tests.chaos.agent import ChaosAgent, ChaosLog, ChaosPlan
from tests.chaos.api_sends import ApiPlan, ApiResult, run_api_sends
from tests.chaos.harness import Harness
from tests.chaos.humans import HumanPlan, HumanResult, run_humans
from tests.chaos.load import LoadPlan, LoadResult, run_load
from tests.chaos.stack import StackConfig
from tests.chaos.verdict import Verdict

SEED_ENV = "LULL_CHAOS_SEED"
SECONDS_ENV = "LULL_CHAOS_SECONDS"
LANES_ENV = "LULL_CHAOS_LANES"


def chaos_seed() -> int:
    """LULL_CHAOS_SEED when set (to replay a run), else a fresh one."""
    configured = os.environ.get(SEED_ENV, "").strip()
    return int(configured) if configured else secrets.randbelow(1_000_000)


def chaos_plan() -> ChaosPlan:
    """The default plan, limited to the lanes in LULL_CHAOS_LANES (comma-separated) if set."""
    plan = ChaosPlan()
    configured = os.environ.get(LANES_ENV, "").strip()
    if not configured:
        return plan
    lanes = frozenset(name.strip() for name in configured.split(",") if name.strip())
    unknown = lanes - plan.lanes
    if unknown:
        raise ValueError(
            f"{LANES_ENV}: unknown lanes {sorted(unknown)}; known {sorted(plan.lanes)}"
        )
    return replace(plan, lanes=lanes)


@dataclass
class ChaosRun:
    """What one run produced."""

    seed: int
    load: LoadResult
    humans: HumanResult
    log: ChaosLog
    verdict: Verdict
    workdir: Path
    """Where every process's log is (kept by pytest for the last runs)."""
    api: ApiResult

    def report(self) -> str:
        """The summary line, then the details a reader needs to judge or replay it."""
        v = self.verdict
        details = (
            f"chaos seed={self.seed} ({SEED_ENV}={self.seed} replays it) "
            f"refused_posts={self.load.refused()} human_posts={len(self.humans.posts)} "
            f"stamped_paused={v.stamped} "
            f"api_keys={len(self.api.posted)} api_accepted={len(self.api.accepted)} "
            f"api_sent={v.api_sent} api_refused_posts={self.api.refused} "
            f"gap_resends={v.gap_resends} "
            f"(killed {_spread(v.gap_kill_after_ms)} ms after the send; "
            f"{v.gap_resends_after_outage} with Redis down at the send) "
            f"longest_window_ms={v.longest_open_ms} windows_checked={v.checked_windows} "
            f"faults: {self.log.line()} logs={self.workdir}"
        )
        lines = [v.summary_line(), details, *(f"PROBLEM {p}" for p in v.problems)]
        return "\n".join(lines)


async def chaos_run(
    workdir: Path,
    seconds: float,
    seed: int,
    *,
    load: LoadPlan | None = None,
    plan: ChaosPlan | None = None,
    stack: StackConfig | None = None,
    drain_s: float = 30.0,
) -> ChaosRun:
    """Load for `seconds` with chaos alongside, then drain and judge."""
    load = load or LoadPlan(seconds=seconds)
    async with Harness(workdir, stack or StackConfig()) as harness:
        stop = asyncio.Event()
        agent = ChaosAgent(harness.stack, harness.bot, seed, plan or chaos_plan())
        chaos = asyncio.create_task(agent.run(stop))
        url = harness.stack.webhook_url
        humans = asyncio.create_task(run_humans(HumanPlan(), load, url, seed, stop))
        api = asyncio.create_task(run_api_sends(ApiPlan(), harness.stack.send_api_url, seed, stop))
        try:
            result = await run_load(load, url, seed)
        finally:
            stop.set()
            await chaos
            human_result = await humans
            api_result = await api
        verdict = await harness.settle_and_judge(
            result, agent.log.sender_kills, drain_s, human_result.conversations,
            frozenset(api_result.accepted),
        )  # fmt: skip
    return ChaosRun(seed, result, human_result, agent.log, verdict, workdir, api_result)


def _spread(values_ms: list[int]) -> str:
    """min..median..max, or - when there is nothing."""
    if not values_ms:
        return "-"
    ordered = sorted(values_ms)
    return f"{ordered[0]}..{ordered[len(ordered) // 2]}..{ordered[-1]}"
