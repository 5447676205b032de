"""Hostile-input fixtures: the real ingest app on loopback and a processor on the same namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lull.ingest.app import create_app
from lull.ingest.settings import IngestSettings
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings

# The sender's fixtures (a fake Graph API, senders on the test Redis) and `lull dead`, for
# the hostile tests of the sender and of what operators are shown.
from tests.ops.lull_dead import lull_dead  # noqa: F401
from tests.sender.conftest import graph, graph_server, make_sender, sender_env  # noqa: F401

SECRET = "hostile-app-secret"
VERIFY_TOKEN = "hostile-verify-token"

IngestClient = TestClient[web.Request, web.Application]


@pytest.fixture
async def ingest(base_env: dict[str, str]) -> AsyncIterator[IngestClient]:
    """Ingest with a 3 MiB limit (the default) and a short Redis timeout."""
    env = {**base_env, "LULL_APP_SECRET": SECRET, "LULL_VERIFY_TOKEN": VERIFY_TOKEN,
           "LULL_INGEST_REDIS_TIMEOUT_MS": "5000"}  # fmt: skip
    client: IngestClient = TestClient(TestServer(create_app(IngestSettings.from_env(env))))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
def processor(redis: aioredis.Redis, base_env: dict[str, str]) -> Processor:
    """A processor whose clamps put every event time at the Redis clock: windows close at
    now + window whatever the body says, so tests flush instead of waiting."""
    env = {**base_env, "LULL_WINDOW_MS": "60000", "LULL_MAX_WAIT_MS": "60000",
           "LULL_MAX_LATENESS_MS": "0", "LULL_MAX_SKEW_MS": "0", "LULL_MAX_DELIVERIES": "2",
           "LULL_CLAIM_IDLE_MS": "60000", "LULL_PROCESSOR_METRICS_PORT": "0"}  # fmt: skip
    return Processor(redis, ProcessorSettings.from_env(env))
