"""Media test fixtures: the fake CDN, a host off the allowlist, a fake transcription server,
and a sender with media links whose media server listens on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from lull.dev.embedded_redis import free_port
from lull.dev.fake_media import FAKE_CDN, FAKE_MEDIA, FakeCdn, FakeMedia, create_fake_cdn_app
from lull.dev.fake_transcribe import FAKE_TRANSCRIBER, FakeTranscriber, create_fake_transcribe_app
from lull.sender.app import Sender
from tests.sender.conftest import MakeSender

MEDIA_SECRET = "media-secret-for-tests-0123456789"


@pytest.fixture
async def cdn_server() -> AsyncIterator[TestServer]:
    """Meta's CDN, as far as the tests go (on LULL_MEDIA_HOSTS)."""
    server = TestServer(create_fake_cdn_app())
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def elsewhere_server() -> AsyncIterator[TestServer]:
    """A host a hostile webhook points at: never on the allowlist."""
    server = TestServer(create_fake_cdn_app())
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def transcribe_server() -> AsyncIterator[TestServer]:
    """The fake OpenAI-compatible transcription endpoint."""
    server = TestServer(create_fake_transcribe_app())
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def cdn(cdn_server: TestServer) -> FakeCdn:
    """The fake CDN's files and requests."""
    return cdn_server.app[FAKE_CDN]


@pytest.fixture
def elsewhere(elsewhere_server: TestServer) -> FakeCdn:
    """The off-allowlist host's files and requests."""
    return elsewhere_server.app[FAKE_CDN]


@pytest.fixture
def transcriber(transcribe_server: TestServer) -> FakeTranscriber:
    """The fake transcriber's texts and calls."""
    return transcribe_server.app[FAKE_TRANSCRIBER]


@pytest.fixture
def whatsapp_media_store(graph_server: TestServer) -> FakeMedia:
    """WhatsApp's media as the fake Graph API holds it."""
    return graph_server.app[FAKE_MEDIA]


@pytest.fixture
def media_port() -> int:
    """The media server's port (free when the test starts)."""
    return free_port()


@pytest.fixture
def media_env(cdn_server: TestServer, media_port: int) -> dict[str, str]:
    """Media links on, the fake CDN allowed (the fake Graph API is, as the Graph host)."""
    return {
        "LULL_MEDIA_SECRET": MEDIA_SECRET,
        "LULL_MEDIA_HOSTS": f"127.0.0.1:{cdn_server.port}",
        "LULL_MEDIA_PORT": str(media_port),
        "LULL_MEDIA_PUBLIC_URL": f"http://127.0.0.1:{media_port}",
    }


@pytest.fixture
async def media_sender(
    make_sender: MakeSender, media_env: dict[str, str], media_port: int
) -> AsyncIterator[Sender]:
    """A sender with media links on; its media server listens on media_port."""
    sender = await make_sender(**media_env)
    assert sender.media is not None
    app = sender.media.app()
    assert app is not None
    server = TestServer(app, port=media_port)
    await server.start_server()
    yield sender
    await server.close()


@pytest.fixture
def elsewhere_server_port(elsewhere_server: TestServer) -> int:
    """The off-allowlist host's port."""
    assert elsewhere_server.port is not None
    return elsewhere_server.port


@pytest.fixture
def graph_server_url(graph_server: TestServer) -> str:
    """The fake Graph API's base URL."""
    return str(graph_server.make_url("")).rstrip("/")
