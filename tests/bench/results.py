"""What one load phase measured, in a form both generators produce."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson


@dataclass(frozen=True)
class LoadResult:
    """Answers counted during one phase of load against one server."""

    generator: str
    elapsed_s: float
    ok: int
    """Answers with status 200: each one must be an entry in the stream."""
    not_ok: int
    errors: int
    """Connections that failed or closed under a request."""
    abandoned: int
    """Requests still unanswered when the phase ended (their entries may land)."""
    p50_ms: float
    p99_ms: float
    target_rate: float | None = None
    """Fixed request rate of an open-loop phase; None for closed loop."""

    @property
    def ok_per_s(self) -> float:
        """Throughput in 200 answers per second."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> bytes:
        """One JSON line, as the Python generator prints it."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: bytes) -> LoadResult:
        """Parse what to_json wrote."""
        return cls(**orjson.loads(line))


def percentile_ms(sorted_s: list[float], fraction: float) -> float:
    """Nearest-rank percentile of latencies in seconds, in milliseconds."""
    if not sorted_s:
        return float("nan")
    index = min(len(sorted_s) - 1, max(0, round(fraction * len(sorted_s)) - 1))
    return sorted_s[index] * 1000
