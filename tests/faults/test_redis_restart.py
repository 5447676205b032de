"""Redis restarts mid-stream (AOF, appendfsync always): services reconnect, nothing is lost.

Real processes: Redis, ingest, two processors, one sender, the fake Graph API, and the chaos
bot. Redis is SIGKILLed once and SIGTERMed once while load runs; it comes back on the same
port from its AOF. Every message ingest answered 200 for must be answered exactly once, and
no service may exit or spin: each keeps its first process, and its consumers' logs stay
short.

The second test makes the Graph API slow, so that replies are in flight when Redis dies:
they are accepted while the sender cannot mark their batches delivered, and the sender,
alive and aware it sent them, must not send them again once Redis is back.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.chaos.graph_control import script_graph, sent_records
from tests.chaos.harness import Harness
from tests.chaos.load import LoadPlan, run_load
from tests.chaos.stack import StackConfig
from tests.poll import until

SEED = 6
LOAD_S = 9.0
DOWN_S = 1.0
RECEIPTS_BETWEEN = 20
WAIT_S = 20.0
# A consumer that retried in a hot loop would log thousands of lines during the outages
# (ingest logs one line per refused POST: proportional to the load, so not counted).
MAX_LOG_LINES = 1000
GRAPH_LATENCY_MS = 400
IN_FLIGHT = 3


async def _receipts_reach(harness: Harness, count: int) -> None:
    """Until the bot got `count` batches (bounded: the stack may be stuck)."""
    await until(lambda: len(harness.bot.receipts) >= count, f"the bot got {count} batches", WAIT_S)


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_redis_restarts_mid_stream_lose_nothing_and_restart_no_service(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, StackConfig(processors=2, senders=1)) as harness:
        stack = harness.stack
        load = asyncio.create_task(run_load(LoadPlan(seconds=LOAD_S), stack.webhook_url, SEED))
        await _receipts_reach(harness, RECEIPTS_BETWEEN)
        await stack.restart_redis(hard=True, down_s=DOWN_S)
        # Work resumed after the first restart before Redis goes down again.
        await _receipts_reach(harness, len(harness.bot.receipts) + RECEIPTS_BETWEEN)
        await stack.restart_redis(hard=False, down_s=DOWN_S)
        result = await load
        verdict = await harness.settle_and_judge(result, sender_kills=[], timeout_s=30)
        services = stack.services()
        starts = {s.name: s.starts for s in services}
        running = {s.name: s.alive() for s in services}
        log_lines = {
            s.name: len(s.log_path.read_text().splitlines())
            for s in [*stack.processors, *stack.senders]
        }
        after = len(harness.bot.receipts)

    assert not verdict.problems, "\n".join([verdict.summary_line(), *verdict.problems])
    assert result.refused() > 0, "the outages should have refused some POSTs with 503"
    assert verdict.lost == 0
    assert verdict.duplicates == 0
    assert after > 2 * RECEIPTS_BETWEEN
    assert set(starts.values()) == {1}, f"a service needed a restart: {starts}"
    assert all(running.values()), f"a service exited: {running}"
    assert max(log_lines.values()) < MAX_LOG_LINES, f"log lines per service: {log_lines}"


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_replies_in_flight_when_redis_dies_are_not_sent_again(tmp_path: Path) -> None:
    async with Harness(tmp_path, StackConfig(processors=1, senders=1)) as harness:
        stack = harness.stack
        graph = stack.graph_url(0)
        await script_graph(graph, [], GRAPH_LATENCY_MS)
        load = asyncio.create_task(run_load(LoadPlan(seconds=5), stack.webhook_url, SEED))
        deadline = time.monotonic() + WAIT_S
        # Batches the bot answered whose replies the slow Graph API has not recorded yet.
        while len(harness.bot.receipts) - len(await sent_records(graph)) < IN_FLIGHT:
            assert time.monotonic() < deadline, "no replies in flight"
            await asyncio.sleep(0.01)
        await stack.restart_redis(hard=True, down_s=DOWN_S)
        await script_graph(graph, [])
        result = await load
        verdict = await harness.settle_and_judge(result, sender_kills=[], timeout_s=30)

    assert verdict.lost == 0
    assert verdict.duplicates == 0, "\n".join([verdict.summary_line(), *verdict.problems])
