"""`python -m tests.bench [NAME ...]`: run the named benches (default all), then one table."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from redis.exceptions import RedisError

from lull.common.env import ConfigError
from tests.bench import (
    bench_heavy,
    bench_lifetime,
    bench_limits,
    bench_presence,
    ingest_bench,
    processor_bench,
    sender_bench,
)
from tests.bench.config import BenchConfig
from tests.bench.procs import BenchError
from tests.bench.report import Report, table

Bench = Callable[[BenchConfig], Report]


def benches() -> dict[str, Bench]:
    """Every bench by name, in the order `all` runs them (processor, sender: add here)."""
    return {
        "ingest": ingest_bench.run,
        "processor": processor_bench.run,
        "sender": sender_bench.run,
        "lifetime": bench_lifetime.run,
        "presence": bench_presence.run,
    }


def _terminate(signum: int, _frame: FrameType | None) -> None:
    # Unwind like Ctrl-C, so every `finally` stops its child processes.
    raise SystemExit(128 + signum)


def parts() -> dict[str, Bench]:
    """Phases of a bench above that may also run alone (not part of `all`)."""
    return {"limits": bench_limits.run, "heavy": bench_heavy.run}


def main(argv: list[str] | None = None) -> int:
    """Run benches; exit 1 when one misses its target, 2 when one cannot measure."""
    known = benches() | parts()
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(known))
    names = parser.parse_args(argv).names or list(benches())
    if unknown := [name for name in names if name not in known]:
        parser.error(f"no bench named {', '.join(unknown)}; there are {', '.join(known)}")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        config = BenchConfig.from_env()
        # This script is idle while load runs, but keep it off the server's core anyway.
        os.sched_setaffinity(0, {config.loadgen_cpu})
        reports = [known[name](config) for name in names]
    except (BenchError, ConfigError, RedisError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench interrupted", file=sys.stderr)
        return 130
    print()
    print("\n".join(table(reports)))
    return 0 if all(report.passed for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
