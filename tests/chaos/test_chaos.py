"""The chaos test: real processes, load, random kills, stalls, Redis restarts, API bursts.

The short run is part of `make test`; `make chaos` runs the long one (LULL_CHAOS_SECONDS,
default 600). Both print the summary line and the seed (LULL_CHAOS_SEED replays a run).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.run import SECONDS_ENV, chaos_run, chaos_seed

SHORT_LOAD_S = 22.0


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_short_chaos_run_loses_nothing_and_answers_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await chaos_run(tmp_path, SHORT_LOAD_S, chaos_seed())
    with capsys.disabled():
        print("\n" + run.report())
    assert not run.verdict.problems, run.report()


@pytest.mark.chaos
async def test_long_chaos_run_loses_nothing_and_answers_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seconds = float(os.environ.get(SECONDS_ENV, "0") or 0)
    if seconds <= 0:
        pytest.skip(f"the long chaos run needs {SECONDS_ENV} (make chaos sets it)")
    run = await chaos_run(tmp_path, seconds, chaos_seed(), drain_s=120.0)
    with capsys.disabled():
        print("\n" + run.report())
    assert not run.verdict.problems, run.report()
