"""Ingest against the naive handler: max throughput, latency at 80% of it, stores checked.

Each server runs alone on config.server_cpu; the load generator, Redis and this script
share config.loadgen_cpu, so nothing else takes cycles from the server under test.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import redis

from common.embedded_redis import EmbeddedRedis, free_port
from common.keys import Keys
from tests.bench.config import BenchConfig
from tests.bench.machine import BUSY_WARNING, describe_load, sample, shares
from tests.bench.payload import SECRET, VERIFY_TOKEN, messenger_payload
from tests.bench.procs import ROOT, BenchError, pin, pinned, python_module, serving
from tests.bench.report import Report, Row
from tests.bench.results import LoadResult
from tests.bench.wrk import run_wrk, wrk_binary

SERVERS = (
    ("ingest (pipelined)", "ingest"),
    ("naive (await per XADD)", "tests.bench.naive_ingest"),
)
TARGET_RATIO = 1.5
LATENCY_LOAD = 0.8
# A phase disturbed by other processes on the server's core is measured once more.
PHASE_ATTEMPTS = 2


def run(config: BenchConfig) -> Report:
    """Bench both servers in one run against one dedicated redis-server."""
    wrk = None if config.loadgen == "python" else wrk_binary()
    if config.loadgen == "wrk" and wrk is None:
        raise BenchError("LULL_BENCH_LOADGEN=wrk but wrk is not on PATH (apt-get install wrk)")
    _describe(config, wrk)
    with tempfile.TemporaryDirectory(prefix="lull-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server = EmbeddedRedis(tmp / "redis", appendonly=False)
        try:
            server.start()
            assert server.process is not None
            pin(server.process.pid, config.loadgen_cpu)
            rows = [
                _bench(name, module, config=config, redis_url=server.url, wrk=wrk, tmp=tmp)
                for name, module in SERVERS
            ]
        finally:
            server.stop()
    ingest, naive = rows[0].peak.ok_per_s, rows[1].peak.ok_per_s
    ratio = ingest / naive if naive else float("inf")
    passed = ratio >= TARGET_RATIO
    verdict = f"ratio {ingest:.0f}/{naive:.0f} = {ratio:.2f}x (target >= {TARGET_RATIO}x)"
    return Report("ingest", rows, [verdict + ("" if passed else "  MISSED")], passed)


def _describe(config: BenchConfig, wrk: str | None) -> None:
    peak = f"wrk ({wrk}), 1 thread" if wrk else "python generator (raw HTTP/1.1 on uvloop, no wrk)"
    print(
        f"ingest bench: each server alone on core {config.server_cpu}; load generator, "
        f"redis-server and this script on core {config.loadgen_cpu}",
        f"max throughput: {peak}, closed loop, {config.connections} connections, "
        f"{config.seconds:g} s after a {config.warmup_seconds:g} s warm-up",
        f"latency: python generator, open loop at {LATENCY_LOAD:.0%} of each server's max for "
        f"{config.latency_seconds:g} s, measured from each request's due time "
        "(wrk cannot hold a fixed rate)",
        sep="\n  ",
        flush=True,
    )
    if config.shared_core:
        print("  WARNING: one core only: server and generator share it", flush=True)
    print("  " + describe_load({config.server_cpu, config.loadgen_cpu}), flush=True)


def _bench(
    name: str, module: str, *, config: BenchConfig, redis_url: str, wrk: str | None, tmp: Path
) -> Row:
    namespace = "bench" + secrets.token_hex(4)
    port = free_port()
    env = {
        "LULL_REDIS_URL": redis_url,
        "LULL_NAMESPACE": namespace,
        "LULL_APP_SECRET": SECRET,
        "LULL_VERIFY_TOKEN": VERIFY_TOKEN,
        "LULL_INGEST_PORT": str(port),
        "LULL_LOG_LEVEL": "warning",
        "LULL_LOG_FORMAT": "json",
    }
    argv = pinned(config.server_cpu, python_module(module))
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        with serving(argv, env, port, tmp / f"{module}.log") as process:
            done = [_python_phase(config, port, config.warmup_seconds, None)]
            watch = _Watch(name, config.server_cpu, process.pid, done)
            peak = watch.measure("max", lambda: _peak_phase(config, port, wrk, tmp))
            rate = LATENCY_LOAD * peak.ok_per_s
            latency = watch.measure(
                "80%", lambda: _python_phase(config, port, config.latency_seconds, rate)
            )
        # The server has stopped, so every entry it was going to write is written.
        _check_stored(name, client.xlen(Keys(namespace).inbound()), done)
    finally:
        for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            client.delete(key)
        client.close()
    return Row(name, peak, latency)


class _Watch:
    """Runs phases, reporting how much of the server's core other processes took."""

    def __init__(self, name: str, cpu: int, pid: int, done: list[LoadResult]) -> None:
        self._name = name
        self._cpu = cpu
        self._pid = pid
        self._done = done

    def measure(self, label: str, phase: Callable[[], LoadResult]) -> LoadResult:
        """Run phase; once more if other work took more than BUSY_WARNING of the core."""
        for attempt in range(1, PHASE_ATTEMPTS + 1):
            before = sample(self._cpu, self._pid)
            result = phase()
            self._done.append(result)
            own, other = shares(before, sample(self._cpu, self._pid))
            _report_phase(f"{self._name} {label}", result, own, other)
            if other <= BUSY_WARNING:
                break
            retry = "measuring again" if attempt < PHASE_ATTEMPTS else "keeping this figure"
            print(
                f"    WARNING: other work took {other:.0%} of the server's core: {retry}",
                flush=True,
            )
        return result


def _peak_phase(config: BenchConfig, port: int, wrk: str | None, tmp: Path) -> LoadResult:
    if wrk is None:
        return _python_phase(config, port, config.seconds, None)
    return run_wrk(
        wrk,
        messenger_payload(),
        port,
        connections=config.connections,
        seconds=config.seconds,
        cpu=config.loadgen_cpu,
        tmp=tmp,
    )


def _python_phase(config: BenchConfig, port: int, seconds: float, rate: float | None) -> LoadResult:
    argv = [
        *python_module("tests.bench.loadgen"),
        "closed" if rate is None else "open",
        "--port", str(port),
        "--connections", str(config.connections),
        "--seconds", f"{seconds:g}",
        *([] if rate is None else ["--rate", f"{rate:.1f}"]),
    ]  # fmt: skip
    done = subprocess.run(
        pinned(config.loadgen_cpu, argv),
        capture_output=True,
        cwd=ROOT,
        timeout=seconds + 30,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"load generator failed: {done.stderr.decode(errors='replace')}")
    return LoadResult.from_json(done.stdout.splitlines()[-1])


def _report_phase(title: str, result: LoadResult, own: float, other: float) -> None:
    mode = "closed loop" if result.target_rate is None else f"open loop {result.target_rate:.0f}/s"
    problems = (f", {result.not_ok} non-200" if result.not_ok else "") + (
        f", {result.errors} connection errors" if result.errors else ""
    )
    print(
        f"  {title}: {result.ok_per_s:.0f} req/s ({result.generator}, {mode}), "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms{problems}; "
        f"server core: {own:.0%} server, {other:.0%} other work",
        flush=True,
    )


def _check_stored(name: str, stored: int, phases: list[LoadResult]) -> None:
    # Every 200 must be an entry; unanswered requests may have landed too, nothing else.
    answered = sum(phase.ok for phase in phases)
    unanswered = sum(phase.abandoned for phase in phases)
    if not answered <= stored <= answered + unanswered:
        raise BenchError(
            f"{name}: XLEN is {stored} for {answered} answers 200 "
            f"and at most {unanswered} unanswered requests"
        )
    print(
        f"  {name} stored: XLEN {stored} for {answered} answers 200"
        + (f" (+{stored - answered} of {unanswered} unanswered)" if stored > answered else ""),
        flush=True,
    )
