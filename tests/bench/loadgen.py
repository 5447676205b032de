"""The Python load generator: HTTP/1.1 keep-alive over raw asyncio protocols on uvloop.

`python -m tests.bench.loadgen closed|open --port P ...` prints one LoadResult JSON line.
aiohttp's client spends more Python per request than the servers under test do, so on one
core it would saturate first; writing one prebuilt request and parsing only the status
line and Content-Length keeps the generator several times cheaper than the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from typing import cast

from lull.common.event_loop import new_event_loop
from tests.bench.payload import messenger_payload
from tests.bench.results import LoadResult, percentile_ms

LOOPBACK = "127.0.0.1"
DRAIN_S = 5.0
# Closed loop never sends more than this many requests per second of phase.
MAX_RATE = 200_000
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end])
        match = _LENGTH.search(head)
        size = end + 4 + (int(match[1]) if match else 0)
        if len(self._buffer) < size:
            return
        del self._buffer[:size]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(int(head[9:12]))

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write the request; the future resolves to the response status."""
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return self._waiter

    def close(self) -> None:
        """Close the transport."""
        if self._transport is not None:
            self._transport.close()


class _Stats:
    def __init__(self) -> None:
        self.ok = 0
        self.not_ok = 0
        self.errors = 0
        self.in_flight = 0
        self.latencies_s: list[float] = []


class _Closed:
    """Closed loop: each connection sends its next request as soon as it has an answer."""

    def __init__(self, seconds: float, max_requests: int) -> None:
        self._deadline = time.perf_counter() + seconds
        self._left = max_requests

    async def next(self) -> float | None:
        now = time.perf_counter()
        if now >= self._deadline or self._left <= 0:
            return None
        self._left -= 1
        return now

    def unsent(self) -> int:
        return 0


class _Open:
    """Open loop: requests are due at a fixed rate, latency counts from when each was due."""

    def __init__(self, rate: float, seconds: float, max_requests: int, workers: int) -> None:
        self._queue: asyncio.Queue[float | None] = asyncio.Queue()
        self._issued = 0
        self._taken = 0
        self._task = asyncio.create_task(self._tick(rate, seconds, max_requests, workers))

    async def _tick(self, rate: float, seconds: float, max_requests: int, workers: int) -> None:
        started = time.perf_counter()
        while self._issued < max_requests and (now := time.perf_counter()) - started < seconds:
            due = min(max_requests, int((now - started) * rate))
            for index in range(self._issued, due):
                self._queue.put_nowait(started + index / rate)
            self._issued = max(self._issued, due)
            # uvloop timers have 1 ms resolution: requests go out in bursts of rate/1000.
            await asyncio.sleep(0.0005)
        for _ in range(workers):
            self._queue.put_nowait(None)

    async def next(self) -> float | None:
        due = await self._queue.get()
        self._taken += due is not None
        return due

    def unsent(self) -> int:
        self._task.cancel()
        return self._issued - self._taken


async def _connect(port: int) -> _Connection:
    _, conn = await asyncio.get_running_loop().create_connection(_Connection, LOOPBACK, port)
    return conn


async def _worker(
    conn: _Connection, port: int, request: bytes, schedule: _Closed | _Open, stats: _Stats
) -> None:
    try:
        while (due := await schedule.next()) is not None:
            stats.in_flight += 1
            try:
                status = await conn.send(request)
            except ConnectionError:
                stats.in_flight -= 1
                stats.errors += 1
                conn.close()
                conn = await _connect(port)
                continue
            stats.in_flight -= 1
            stats.latencies_s.append(time.perf_counter() - due)
            if status == 200:
                stats.ok += 1
            else:
                stats.not_ok += 1
    finally:
        conn.close()


async def run_phase(
    port: int, connections: int, seconds: float, rate: float | None, max_requests: int
) -> LoadResult:
    """Load 127.0.0.1:port for seconds (plus DRAIN_S at most for the last answers)."""
    request = messenger_payload().http_request(LOOPBACK, port)
    stats = _Stats()
    # Connect first: the clock starts with every connection open.
    conns = await asyncio.gather(*(_connect(port) for _ in range(connections)))
    schedule: _Closed | _Open
    if rate is None:
        schedule = _Closed(seconds, max_requests)
    else:
        schedule = _Open(rate, seconds, max_requests, connections)
    started = time.perf_counter()
    workers = [asyncio.create_task(_worker(c, port, request, schedule, stats)) for c in conns]
    _, pending = await asyncio.wait(workers, timeout=seconds + DRAIN_S)
    elapsed_s = time.perf_counter() - started
    for task in pending:
        task.cancel()
    outcomes = await asyncio.gather(*workers, return_exceptions=True)
    # A worker that could not (re)connect ended with OSError; cancelled ones are not Exceptions.
    stats.errors += sum(isinstance(outcome, Exception) for outcome in outcomes)
    stats.latencies_s.sort()
    return LoadResult(
        generator="python",
        elapsed_s=seconds if rate is not None else elapsed_s,
        ok=stats.ok,
        not_ok=stats.not_ok,
        errors=stats.errors,
        abandoned=stats.in_flight + schedule.unsent(),
        p50_ms=percentile_ms(stats.latencies_s, 0.50),
        p99_ms=percentile_ms(stats.latencies_s, 0.99),
        target_rate=rate,
    )


def main(argv: list[str] | None = None) -> int:
    """Run one phase and print its LoadResult as JSON."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loadgen")
    parser.add_argument("mode", choices=("closed", "open"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="requests per second (open loop only)")
    args = parser.parse_args(argv)
    if (args.mode == "open") != (args.rate is not None):
        parser.error("--rate is required with open, and only with open")
    loop = new_event_loop()
    try:
        result = loop.run_until_complete(
            run_phase(
                args.port,
                args.connections,
                args.seconds,
                args.rate,
                max_requests=int(args.seconds * MAX_RATE),
            )
        )
    finally:
        loop.close()
    sys.stdout.buffer.write(result.to_json() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
