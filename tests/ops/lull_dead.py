"""The `lull_dead` fixture: run `lull dead ...` as an operator would, in the test's namespace."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from lull.cli import main

RunDead = Callable[..., Awaitable[tuple[int, str, str]]]
"""(*argv, **extra_env) -> (exit code, stdout, stderr)"""


@pytest.fixture
def lull_dead(
    monkeypatch: pytest.MonkeyPatch, base_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> RunDead:
    """Runs `lull dead ARGV...` with base_env (plus extra variables for that one run)."""
    monkeypatch.delenv("LULL_REDIS_CLUSTER", raising=False)
    monkeypatch.delenv("LULL_SHARDS", raising=False)
    for name, value in base_env.items():
        monkeypatch.setenv(name, value)

    async def run(*argv: str, **extra_env: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            for name, value in extra_env.items():
                patch.setenv(name, value)
            # The command runs its own event loop, so not on this test's.
            code = await asyncio.to_thread(main, ["dead", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
