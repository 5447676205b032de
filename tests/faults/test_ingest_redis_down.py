"""Redis unreachable at ingest: 503 within the configured timeout, not ready, nothing
acknowledged that is not stored, and back to 200 by itself once Redis is back."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from lull.common.signing import sign
from lull.common.store.keys import Keys
from lull.dev.embedded_redis import EmbeddedRedis
from lull.ingest.app import create_app
from lull.ingest.settings import IngestSettings
from tests.hostile.bodies import text_body
from tests.hostile.conftest import IngestClient
from tests.poll import until

SECRET = "faults-app-secret"
TIMEOUT_MS = 300
# Scheduling slack on a shared 2-core machine; a request that really waited on Redis
# without a bound would take far longer.
SLACK_S = 1.0
RECOVERY_S = 15.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own; AOF fsynced before each reply, so even a kill
    keeps every entry it confirmed."""
    redis = EmbeddedRedis(tmp_path / "redis", appendonly=True,
                          extra_args=("--appendfsync", "always")).start()  # fmt: skip
    try:
        yield redis
    finally:
        if redis.process is not None and redis.process.poll() is None:
            redis.process.send_signal(signal.SIGCONT)  # in case a test froze it
        redis.stop()


def restart(server: EmbeddedRedis) -> EmbeddedRedis:
    """The same data directory and port, as an operator's restart would."""
    again = EmbeddedRedis(server.data_dir, appendonly=True, port=server.port,
                          extra_args=server.extra_args)  # fmt: skip
    return again.start()


@pytest.fixture
async def ingest(server: EmbeddedRedis, base_env: dict[str, str]) -> AsyncIterator[IngestClient]:
    env = {**base_env, "LULL_REDIS_URL": server.url, "LULL_APP_SECRET": SECRET,
           "LULL_VERIFY_TOKEN": "t", "LULL_INGEST_REDIS_TIMEOUT_MS": str(TIMEOUT_MS)}  # fmt: skip
    client: IngestClient = TestClient(TestServer(create_app(IngestSettings.from_env(env))))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
def bodies() -> Iterator[bytes]:
    """Distinct signed-to-be webhook bodies, as many as a test asks for."""
    return (
        text_body("messenger", "u1", f"m{n}", f"text {n}", 1763800000000 + n)
        for n in itertools.count()
    )


async def post(client: IngestClient, body: bytes) -> tuple[int, float]:
    """(status, seconds taken) of one signed POST."""
    started = time.monotonic()
    response = await client.post(
        "/webhook", data=body, headers={"X-Hub-Signature-256": sign(SECRET, body)}
    )
    await response.read()
    return response.status, time.monotonic() - started


async def stored(server: EmbeddedRedis, namespace: str) -> list[bytes]:
    """Every body in the inbound stream, read through a client of its own."""
    check = aioredis.Redis.from_url(server.url, socket_timeout=5)
    try:
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]], await check.xrange(Keys(namespace).inbound())
        )
    finally:
        await check.aclose()
    return [fields[b"body"] for _id, fields in entries]


async def until_accepted(
    client: IngestClient, bodies: Iterator[bytes], accepted: list[bytes]
) -> None:
    """POST fresh bodies until one is accepted again (bounded): recovery needs no restart."""
    deadline = time.monotonic() + RECOVERY_S
    while time.monotonic() < deadline:
        body = next(bodies)
        status, _ = await post(client, body)
        assert status in (200, 503)
        if status == 200:
            accepted.append(body)
            return
        await asyncio.sleep(0.05)  # Redis restarting in another process, bounded above
    pytest.fail(f"ingest did not recover within {RECOVERY_S} s")


async def test_redis_stopped_is_503_and_recovers_by_itself(
    ingest: IngestClient, server: EmbeddedRedis, namespace: str, bodies: Iterator[bytes]
) -> None:
    accepted = [next(bodies)]
    assert (await post(ingest, accepted[0]))[0] == 200
    server.stop()
    status, took_s = await post(ingest, next(bodies))
    assert status == 503
    assert took_s < TIMEOUT_MS / 1000 + SLACK_S
    ready = await ingest.get("/readyz")
    assert ready.status == 503
    assert (await ingest.get("/healthz")).status == 200
    server = restart(server)
    try:
        await until_accepted(ingest, bodies, accepted)
        assert (await ingest.get("/readyz")).status == 200
        assert await stored(server, namespace) == accepted
    finally:
        server.stop()


async def test_redis_frozen_is_503_within_the_timeout(
    ingest: IngestClient, server: EmbeddedRedis, namespace: str, bodies: Iterator[bytes]
) -> None:
    # SIGSTOP: connections stay open and nothing answers, the case a timeout exists for.
    assert server.process is not None
    accepted = [next(bodies)]
    assert (await post(ingest, accepted[0]))[0] == 200
    server.process.send_signal(signal.SIGSTOP)
    try:
        statuses = await asyncio.gather(*(post(ingest, next(bodies)) for _ in range(20)))
        assert {status for status, _ in statuses} == {503}
        # A request may queue behind a pipeline already waiting: at most two timeouts.
        assert max(took for _, took in statuses) < 2 * TIMEOUT_MS / 1000 + SLACK_S
        assert min(took for _, took in statuses) >= TIMEOUT_MS / 1000 * 0.9
        started = time.monotonic()
        assert (await ingest.get("/readyz")).status == 503
        assert time.monotonic() - started < TIMEOUT_MS / 1000 + SLACK_S
    finally:
        server.process.send_signal(signal.SIGCONT)
    await until_accepted(ingest, bodies, accepted)
    # A 503 may still have been written (Redis ran it after the timeout): Meta's retry is
    # then a duplicate the processor drops by message id. A 200 is always there.
    assert set(accepted) <= set(await stored(server, namespace))


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_outage_under_load_acknowledges_only_stored_bodies(
    ingest: IngestClient, server: EmbeddedRedis, namespace: str, bodies: Iterator[bytes], how: str
) -> None:
    results: list[tuple[bytes, int]] = []
    stop = asyncio.Event()

    async def sender() -> None:
        while not stop.is_set():
            body = next(bodies)
            status, _ = await post(ingest, body)
            results.append((body, status))
            if status != 200:
                await asyncio.sleep(0.01)  # Redis is down: do not spin, bounded by stop

    senders = [asyncio.create_task(sender()) for _ in range(8)]
    try:
        await until(lambda: sum(s == 200 for _, s in results) >= 200, "200 stored", RECOVERY_S)
        assert server.process is not None
        if how == "sigkill":
            server.process.kill()
            server.process.wait()
        else:
            server.stop()
        await until(lambda: sum(s == 503 for _, s in results) >= 20, "20 refused", RECOVERY_S)
        server = restart(server)
        before = len(results)
        await until(
            lambda: sum(s == 200 for _, s in results[before:]) >= 100,
            "100 stored again",
            RECOVERY_S,
        )
    finally:
        stop.set()
        await asyncio.gather(*senders)
        server.stop()
    assert {s for _, s in results} == {200, 503}
    server = restart(server)
    try:
        kept = set(await stored(server, namespace))
    finally:
        server.stop()
    acknowledged = [body for body, status in results if status == 200]
    missing = [body for body in acknowledged if body not in kept]
    assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged bodies lost"
