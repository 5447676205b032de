"""What each bench hands back to `python -m tests.bench`, and the final table."""

from __future__ import annotations

from dataclasses import dataclass

from tests.bench.results import LoadResult


@dataclass(frozen=True)
class Row:
    """One server: its closed-loop maximum and its latency at a fixed lower rate."""

    name: str
    peak: LoadResult
    latency: LoadResult


@dataclass(frozen=True)
class Report:
    """One bench's rows, the lines that judge them, and whether its target was met."""

    bench: str
    rows: list[Row]
    verdicts: list[str]
    passed: bool


def row_line(row: Row, width: int) -> str:
    """`name  N req/s  p50 x ms  p99 y ms  (at R req/s)`."""
    rate = row.latency.target_rate or 0.0
    return (
        f"{row.name:<{width}}  {row.peak.ok_per_s:>7.0f} req/s"
        f"  p50 {row.latency.p50_ms:6.2f} ms  p99 {row.latency.p99_ms:6.2f} ms"
        f"  (latency at {rate:.0f} req/s)"
    )


def table(reports: list[Report]) -> list[str]:
    """Every bench's rows and verdicts, aligned."""
    width = max((len(row.name) for report in reports for row in report.rows), default=0)
    lines: list[str] = []
    for report in reports:
        lines.append(f"[{report.bench}]")
        lines.extend(row_line(row, width) for row in report.rows)
        lines.extend(report.verdicts)
    return lines
