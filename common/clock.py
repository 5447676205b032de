"""The local clock that timers run on. Anything compared across replicas uses Redis TIME."""

from __future__ import annotations

import time


def monotonic_ms() -> float:
    """This process's monotonic clock, in ms: for local timers and durations only."""
    return time.monotonic() * 1000
