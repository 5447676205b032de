"""One capped exponential backoff for every retry loop (consumer, sender, closer, start-up)."""

from __future__ import annotations

import random


def backoff_ms(attempt: int, first_ms: float, max_ms: float, *, jitter: bool = False) -> int:
    """The delay before retry number attempt (1 = after the first failure): first_ms doubled
    per further attempt, capped at max_ms. With jitter, a random point in the upper half,
    so replicas that failed together do not retry in step."""
    ceiling = min(max_ms, first_ms * 2 ** min(max(0, attempt - 1), 30))
    if jitter:
        return int(ceiling / 2 + random.random() * ceiling / 2)  # noqa: S311  (jitter, not crypto)
    return int(ceiling)
