"""Shared fixtures: one real Redis per test session, one random namespace per test."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import structlog

from lull.common.redis_conn import connect
from lull.dev.embedded_redis import EmbeddedRedis, RedisNotFound
from tests.contract.check import EXEMPT_MARKER, outbound_problems

FIXTURES = Path(__file__).parent / "fixtures"


def _docker_redis() -> Iterator[str]:
    from testcontainers.redis import RedisContainer  # noqa: PLC0415  (only without a binary)

    with RedisContainer("redis:7") as container:
        host = container.get_container_host_ip()
        yield f"redis://{host}:{container.get_exposed_port(6379)}/0"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """LULL_TEST_REDIS_URL, else a redis-server of our own, else a container."""
    configured = os.environ.get("LULL_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="lull-test-redis-") as data:
        try:
            server = EmbeddedRedis(Path(data), appendonly=False).start()
        except RedisNotFound:
            yield from _docker_redis()
            return
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Each test starts from structlog's defaults: a command run in-process configures
    logging for the whole process, and a level it set must not hide what a later test
    captures with structlog.testing.capture_logs."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses, so no test ever flushes a shared Redis."""
    return "t" + secrets.token_hex(6)


@pytest.fixture
async def redis(
    redis_url: str, namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[aioredis.Redis]:
    """A client on the test Redis; the test's keys are deleted afterwards.

    Before that, every batch the test left on an outbound stream is checked against the
    bot's published contract (`lull schema batch`), history included: a test that produces
    batches is then also a test of the schema."""
    client = connect(redis_url, timeout_s=5)
    yield client
    broken: list[str] = []
    try:
        if request.node.get_closest_marker(EXEMPT_MARKER) is None:
            broken = await outbound_problems(client, namespace)
    finally:
        async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            await client.delete(key)
        await client.aclose()
    if broken:
        pytest.fail("batches that break the contract (lull schema batch):\n" + "\n".join(broken))


@pytest.fixture
def base_env(redis_url: str, namespace: str) -> dict[str, str]:
    """Environment every service test starts from."""
    return {
        "LULL_REDIS_URL": redis_url,
        "LULL_NAMESPACE": namespace,
        "LULL_LOG_FORMAT": "json",
        "LULL_LOG_LEVEL": "warning",
    }
