"""Numbered steps with their wall time, printed as they start and end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

PREFIX = "[containers]"


def say(line: str) -> None:
    """One progress line, flushed at once (make shows it while the step runs)."""
    print(f"{PREFIX} {line}", flush=True)


@dataclass
class Steps:
    """The steps of one run and how long each took."""

    total: int
    times_s: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Print the step's number and title, then its time when it ends."""
        number = len(self.times_s) + 1
        say(f"step {number}/{self.total}: {title}")
        started = time.monotonic()
        self.times_s[title] = float("nan")
        try:
            yield
        except BaseException:
            self.failed.append(title)
            say(f"step {number}/{self.total} FAILED after {time.monotonic() - started:.1f} s")
            raise
        took_s = time.monotonic() - started
        self.times_s[title] = took_s
        say(f"step {number}/{self.total} done in {took_s:.1f} s")

    def closing_line(self) -> str:
        """`containers: N passed, N failed`, the closing line CI reads."""
        passed = len(self.times_s) - len(self.failed)
        return f"containers: {passed} passed, {len(self.failed)} failed"
