"""The wrk load generator (Debian's `wrk` package): closed loop only, it cannot fix a rate."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.bench.payload import PATH, Payload
from tests.bench.procs import BenchError, pinned
from tests.bench.results import LoadResult

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_NUMBER = r"([\d.]+)(us|ms|s|m)\b"


def wrk_binary() -> str | None:
    """wrk from PATH, if installed."""
    return shutil.which("wrk")


def lua_script(payload: Payload) -> str:
    """wrk's request: POST the signed body on every connection."""
    body = payload.body.decode()
    assert "]==]" not in body
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{body}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-Hub-Signature-256"] = "{payload.signature}"\n'
    )


def run_wrk(
    binary: str,
    payload: Payload,
    port: int,
    *,
    connections: int,
    seconds: float,
    cpu: int,
    tmp: Path,
) -> LoadResult:
    """One thread of wrk on core cpu for seconds; its report parsed into a LoadResult."""
    script = tmp / "post.lua"
    script.write_text(lua_script(payload))
    argv = [
        binary, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "--latency",
        "-s", str(script), f"http://127.0.0.1:{port}{PATH}",
    ]  # fmt: skip
    done = subprocess.run(
        pinned(cpu, argv), capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_report(done.stdout, connections)


def parse_report(text: str, connections: int) -> LoadResult:
    """Counts and latency percentiles from wrk --latency output."""
    total = re.search(rf"(\d+) requests in {_NUMBER}", text)
    if total is None:
        raise BenchError(f"no request count in wrk's output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    not_ok = int(non_2xx[1]) if non_2xx else 0
    return LoadResult(
        generator="wrk",
        elapsed_s=float(total[2]) * _UNITS_S[total[3]],
        ok=int(total[1]) - not_ok,
        not_ok=not_ok,
        errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        # wrk stops at its deadline without waiting: at most one request per connection.
        abandoned=connections,
        p50_ms=_percentile_ms(text, "50"),
        p99_ms=_percentile_ms(text, "99"),
    )


def _percentile_ms(text: str, percent: str) -> float:
    found = re.search(rf"^\s+{percent}%\s+{_NUMBER}", text, re.MULTILINE)
    return float(found[1]) * _UNITS_S[found[2]] * 1000 if found else float("nan")
