"""Ingest test helpers: the real app on a loopback TestServer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lull.ingest.app import create_app, metrics_app
from lull.ingest.settings import IngestSettings

SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"

ClientFactory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]


@pytest.fixture
def ingest_env(base_env: dict[str, str]) -> dict[str, str]:
    """Environment of a correctly configured ingest."""
    return {**base_env, "LULL_APP_SECRET": SECRET, "LULL_VERIFY_TOKEN": VERIFY_TOKEN}


@pytest.fixture
async def make_client(ingest_env: dict[str, str]) -> AsyncIterator[ClientFactory]:
    """Start ingest with ingest_env plus overrides; every client is closed afterwards."""
    clients: list[TestClient] = []  # type: ignore[type-arg]

    async def factory(**overrides: str) -> TestClient:  # type: ignore[type-arg]
        settings = IngestSettings.from_env({**ingest_env, **overrides})
        client: TestClient = TestClient(TestServer(create_app(settings)))  # type: ignore[type-arg]
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


async def scrape(client: TestClient) -> str:  # type: ignore[type-arg]
    """/metrics of a running ingest app, read from its metrics app (not the public port)."""
    async with TestClient(TestServer(metrics_app(client.app))) as metrics:
        response = await metrics.get("/metrics")
        assert response.status == 200
        return await response.text()
