"""A real 3-master Redis Cluster for the session, from redis-server binaries on loopback."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio.cluster import RedisCluster

from lull.common.redis_conn import connect
from lull.dev.embedded_redis import RedisNotFound
from lull.dev.fake_graph import create_fake_graph_app
from lull.dev.redis_cluster import ClusterUnavailable, EmbeddedCluster
from lull.sender.app import Sender
from lull.sender.settings import SenderSettings
from tests.sender.conftest import TOKENS

SHARDS = 4
"""Shard tags {0}..{3} hash to slots on all three masters (the tests check it)."""


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """URL of a 3-master cluster of our own; skipped, with the reason printed, only when this
    machine cannot run one (failed instead with LULL_TEST_REQUIRE_CLUSTER=1)."""
    with tempfile.TemporaryDirectory(prefix="lull-test-cluster-") as data:
        try:
            cluster = EmbeddedCluster(Path(data)).start()
        except (RedisNotFound, ClusterUnavailable) as exc:
            reason = f"cannot start a Redis Cluster here: {exc}"
            print(f"tests/cluster: {reason}", file=sys.stderr)
            if os.environ.get("LULL_TEST_REQUIRE_CLUSTER") == "1":
                pytest.fail(reason)  # CI that has redis-server: never skip silently
            pytest.skip(reason)
        try:
            yield cluster.url
        finally:
            cluster.stop()


@pytest.fixture
async def cluster(cluster_url: str, namespace: str) -> AsyncIterator[RedisCluster]:
    """A cluster client; the test's keys are deleted from every node afterwards."""
    client = connect(cluster_url, timeout_s=5, cluster=True)
    assert isinstance(client, RedisCluster)
    await client.initialize()  # the slot map, for tests that ask which node holds a key
    yield client
    async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def cluster_env(cluster_url: str, namespace: str) -> dict[str, str]:
    """What every service of a cluster test starts from."""
    return {
        "LULL_REDIS_URL": cluster_url,
        "LULL_REDIS_CLUSTER": "1",
        "LULL_NAMESPACE": namespace,
        "LULL_SHARDS": str(SHARDS),
        "LULL_LOG_FORMAT": "json",
        "LULL_LOG_LEVEL": "warning",
    }


@pytest.fixture
async def graph_server() -> AsyncIterator[TestServer]:
    """The fake Graph API on loopback, accepting the sender tests' tokens."""
    server = TestServer(create_fake_graph_app(TOKENS))
    await server.start_server()
    yield server
    await server.close()


async def drain_echo_sender(
    cluster: RedisCluster, cluster_env: dict[str, str], graph_server: TestServer
) -> None:
    """One echo sender on the cluster, sending to the fake Graph API, until it is idle. The
    default rate limits stay on: their keys live on several masters."""
    env = {
        **cluster_env,
        "LULL_HANDLER": "echo",
        "LULL_GRAPH_API_BASE": str(graph_server.make_url("")).rstrip("/"),
        "LULL_ACCESS_TOKENS": orjson.dumps(TOKENS).decode(),
        "LULL_SENDER_METRICS_PORT": "0",
    }
    sender = await Sender.create(cluster, SenderSettings.from_env(env))
    try:
        await sender.drain()
    finally:
        await sender.close()
