"""Malformed HTTP on every port `lull ingest` serves (webhook, metrics, admin API), sent as
raw bytes to the real process: each is refused with a 4xx, nothing is stored, and the log
has one WARNING line per request, no ERROR and no traceback; past the per-port budget the
lines stop (the budget itself: tests/common/test_http_log.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import orjson
import redis.asyncio as aioredis

from lull.common.http_log import LINES_PER_WINDOW
from lull.dev.embedded_redis import free_port, port_answers
from tests.hostile.raw_http import exchange, status_of

ADMIN_TOKEN: Final = "malformed-http-admin-token"
CHALLENGE: Final = b"GET /webhook?hub.mode=subscribe&hub.verify_token=t&hub.challenge="

MALFORMED: Final = {
    "length_and_chunked": b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "query_9_kb": b"GET /webhook?q=" + b"a" * 9_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header_100_kb": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "challenge_1_mb": CHALLENGE + b"9" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "escape_codes_in_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    b"X-\x1b[2J: \x1b]0;owned\x07\r\n\r\n",
    "header_without_colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "negative_length": b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "two_lengths": b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    b"Content-Length: 3\r\n\r\n{}",
    "bad_chunk_size": b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nhello\r\n0\r\n\r\n",
    "nul_in_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "bad_version": b"GET /healthz HTTP/1.x\r\nHost: x\r\n\r\n",
    "space_before_colon": b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length : 2\r\n\r\n{}",
}


@contextmanager
def running_ingest(env: dict[str, str]) -> Iterator[tuple[dict[str, int], list[bytes]]]:
    """`lull ingest` as a process with its three ports; yields the ports and, once it has
    stopped (SIGTERM), fills the list with its output lines."""
    ports = {"webhook": free_port(), "metrics": free_port(), "admin": free_port()}
    env = {**env, "LULL_APP_SECRET": "s", "LULL_VERIFY_TOKEN": "t",
           "LULL_INGEST_PORT": str(ports["webhook"]),
           "LULL_INGEST_METRICS_PORT": str(ports["metrics"]),
           "LULL_ADMIN_TOKEN": ADMIN_TOKEN, "LULL_ADMIN_PORT": str(ports["admin"])}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "lull.ingest"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[bytes] = []
    try:
        deadline = time.monotonic() + 20
        while not all(port_answers("127.0.0.1", p) for p in ports.values()):
            assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
            assert time.monotonic() < deadline, "ingest did not listen"
            time.sleep(0.05)  # a child process starting up, bounded above
        yield ports, lines
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
        lines.extend(output.splitlines())


def parsed(lines: list[bytes]) -> list[dict[str, Any]]:
    """Every output line as JSON (each must be one)."""
    return [orjson.loads(line) for line in lines]


async def test_malformed_requests_are_4xx_one_warning_line_each_and_nothing_stored(
    base_env: dict[str, str], redis: aioredis.Redis, namespace: str
) -> None:
    with running_ingest(base_env) as (ports, lines):
        for port in ports.values():
            for name, request in MALFORMED.items():
                answer = await exchange(port, request)
                status = status_of(answer)
                assert status is not None and 400 <= status < 500, (name, answer[:200])
        # Every port still serves.
        for port in (ports["webhook"], ports["metrics"]):
            ok = await exchange(
                port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert status_of(ok) == 200
    records = parsed(lines)
    assert b"Traceback" not in b"\n".join(lines)
    assert [r for r in records if r["level"] not in ("info", "warning")] == []
    refused = [r for r in records if r["event"] == "malformed HTTP request refused"]
    # One line a request, up to each port's budget (a minute's worth; the run is shorter).
    for name in ports:
        lines_of_port = [r for r in refused if r["port"] == name]
        assert len(lines_of_port) == min(len(MALFORMED), LINES_PER_WINDOW), name
    assert all(len(orjson.dumps(r)) < 1000 for r in refused)
    assert not any("\x1b" in str(r) for r in refused)
    assert [r for r in records if r["event"] != "malformed HTTP request refused"] == []
    # Nothing reached Redis: no webhook stored, no pause.
    assert await redis.keys(f"{namespace}*") == []


async def test_past_the_budget_the_lines_stop(base_env: dict[str, str]) -> None:
    request = MALFORMED["query_9_kb"]
    with running_ingest(base_env) as (ports, lines):
        answers = await asyncio.gather(
            *(exchange(ports["webhook"], request) for _ in range(LINES_PER_WINDOW * 5))
        )
        assert {status_of(a) for a in answers} == {400}
    refused = [r for r in parsed(lines) if r["event"] == "malformed HTTP request refused"]
    # The run takes less than the budget's window (a minute): exactly the budget is logged.
    assert len(refused) == LINES_PER_WINDOW
