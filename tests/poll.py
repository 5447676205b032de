"""Waiting on other processes' progress, where no run-until-idle mode can be called.

Tests drive their own consumers with run_until_idle(); a test that watches real child
processes (or a server task) can only look again, bounded, until what it waits for is there.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import pytest

POLL_S = 0.05

Check = Callable[[], bool | Awaitable[bool]]


async def until(
    check: Check,
    what: str,
    timeout_s: float,
    *,
    every_s: float = POLL_S,
    tolerate: tuple[type[BaseException], ...] = (),
) -> None:
    """Look at check() every every_s until it holds; fail the test after timeout_s.

    Exceptions listed in `tolerate` count as "not yet" (a server still starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
        except tolerate:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting until {what}")
        await asyncio.sleep(every_s)
