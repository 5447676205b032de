"""The media server against the fake Graph API and fake CDNs: the bytes, and every refusal.

Each hostile request asserts what reached Meta's fakes: nothing, when it must not.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client import generate_latest

from lull.dev.fake_media import FakeCdn, FakeMedia
from lull.dev.media_files import png
from lull.sender.app import Sender
from lull.sender.media import Signer, Target
from tests.sender.conftest import MakeSender
from tests.sender.media.conftest import MEDIA_SECRET

ACCOUNT = "wa1"  # its token is the fake Graph API's "wa-token" (tests/sender/conftest.py)


def _link(sender: Sender, target: Target, ttl_s: int = 60, secret: str = MEDIA_SECRET) -> str:
    assert sender.media is not None
    public_url = sender.media.settings.public_url
    return Signer(secret).link(public_url, target, int(time.time()) + ttl_s)


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


def _cdn_url(server_port: int, name: str) -> str:
    return f"http://127.0.0.1:{server_port}/cdn/{name}"


async def test_a_whatsapp_link_streams_the_bytes_meta_holds(
    media_sender: Sender, whatsapp_media_store: FakeMedia
) -> None:
    image = png(32, 32)
    whatsapp_media_store.put("m1", image, "image/png", ACCOUNT)
    status, body = await _get(_link(media_sender, Target("whatsapp", ACCOUNT, media_id="m1")))
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(image).hexdigest()
    assert (whatsapp_media_store.resolves, whatsapp_media_store.downloads) == (["m1"], ["m1"])
    text = generate_latest(media_sender.registry).decode()
    assert 'lull_media_downloads_total{outcome="ok",platform="whatsapp"} 1.0' in text
    assert f'lull_media_bytes_total{{platform="whatsapp"}} {float(len(image))}' in text


async def test_a_cdn_link_streams_the_cdn_file_without_a_token(
    media_sender: Sender, cdn: FakeCdn, media_env: dict[str, str]
) -> None:
    image = png(16, 16)
    cdn.put("a.png", image, "image/png")
    port = int(media_env["LULL_MEDIA_HOSTS"].rsplit(":", 1)[1])
    target = Target("messenger", "p1", url=_cdn_url(port, "a.png"))
    status, body = await _get(_link(media_sender, target))
    assert (status, body) == (200, image)
    assert cdn.requests == ["a.png"]


async def test_a_wrong_signature_is_403_and_meta_is_never_asked(
    media_sender: Sender, whatsapp_media_store: FakeMedia
) -> None:
    whatsapp_media_store.put("m1", png(), "image/png", ACCOUNT)
    target = Target("whatsapp", ACCOUNT, media_id="m1")
    forged = _link(media_sender, target, secret="another-secret-of-enough-length")
    good = _link(media_sender, target)
    tampered = good.replace("/m1?", "/m2?")
    unsigned = good.split("?")[0]
    for url in (forged, tampered, unsigned, good.replace("&s=", "&s=x")):
        status, _body = await _get(url)
        assert status == 403, url
    assert whatsapp_media_store.resolves == whatsapp_media_store.downloads == []
    text = generate_latest(media_sender.registry).decode()
    assert 'lull_media_refusals_total{reason="signature"} 4.0' in text


async def test_an_expired_link_is_410_and_meta_is_never_asked(
    media_sender: Sender, whatsapp_media_store: FakeMedia
) -> None:
    whatsapp_media_store.put("m1", png(), "image/png", ACCOUNT)
    status, _body = await _get(
        _link(media_sender, Target("whatsapp", ACCOUNT, media_id="m1"), ttl_s=-1)
    )
    assert status == 410
    assert whatsapp_media_store.resolves == whatsapp_media_store.downloads == []


async def test_a_webhook_url_off_the_allowlist_is_never_fetched(
    media_sender: Sender, elsewhere: FakeCdn, elsewhere_server_port: int
) -> None:
    elsewhere.put("x.png", png(), "image/png")
    # Even a correctly signed link (a webhook that named this URL) is not fetched.
    target = Target("messenger", "p1", url=_cdn_url(elsewhere_server_port, "x.png"))
    status, _body = await _get(_link(media_sender, target))
    assert status == 403
    assert elsewhere.requests == []
    for url in ("file:///etc/passwd", "http://user:pw@127.0.0.1/x", "gopher://127.0.0.1/"):
        status, _body = await _get(_link(media_sender, Target("messenger", "p1", url=url)))
        assert status == 403


async def test_a_redirect_is_followed_only_inside_the_allowlist(
    media_sender: Sender,
    cdn: FakeCdn,
    elsewhere: FakeCdn,
    media_env: dict[str, str],
    elsewhere_server_port: int,
) -> None:
    port = int(media_env["LULL_MEDIA_HOSTS"].rsplit(":", 1)[1])
    image = png(4, 4)
    cdn.put("real.png", image, "image/png")
    elsewhere.put("evil.png", b"not from Meta", "image/png")
    cdn.redirects["inside"] = _cdn_url(port, "real.png")
    cdn.redirects["outside"] = _cdn_url(elsewhere_server_port, "evil.png")
    inside_url = _link(media_sender, Target("messenger", "p1", url=_cdn_url(port, "inside")))
    inside = await _get(inside_url)
    assert inside == (200, image)
    outside = _link(media_sender, Target("messenger", "p1", url=_cdn_url(port, "outside")))
    status, _body = await _get(outside)
    assert status == 403
    assert elsewhere.requests == []


async def test_the_token_never_follows_a_redirect_to_another_host(
    media_sender: Sender,
    whatsapp_media_store: FakeMedia,
    cdn: FakeCdn,
    media_env: dict[str, str],
) -> None:
    port = int(media_env["LULL_MEDIA_HOSTS"].rsplit(":", 1)[1])
    image = png(4, 4)
    whatsapp_media_store.put("m1", image, "image/png", ACCOUNT)
    cdn.put("m1.png", image, "image/png")
    whatsapp_media_store.moved["m1"] = _cdn_url(port, "m1.png")
    status, body = await _get(_link(media_sender, Target("whatsapp", ACCOUNT, media_id="m1")))
    assert (status, body) == (200, image)
    assert whatsapp_media_store.downloads == ["m1"]  # with the token: it answered the redirect
    assert cdn.authorizations == [None]


async def test_media_larger_than_the_cap_is_refused_before_its_download(
    make_sender: MakeSender,
    media_env: dict[str, str],
    whatsapp_media_store: FakeMedia,
    media_port: int,
) -> None:
    sender = await make_sender(**media_env, LULL_MEDIA_MAX_BYTES="2048")
    async with _Serving(sender, media_port):
        whatsapp_media_store.put("big", png(64, 64, noise=True), "image/png", ACCOUNT)
        status, _body = await _get(_link(sender, Target("whatsapp", ACCOUNT, media_id="big")))
    assert status == 413
    assert whatsapp_media_store.resolves == ["big"]
    assert whatsapp_media_store.downloads == []  # Meta's file_size said enough


async def test_a_body_that_grows_past_the_cap_is_cut(
    make_sender: MakeSender, media_env: dict[str, str], cdn: FakeCdn, media_port: int
) -> None:
    sender = await make_sender(**media_env, LULL_MEDIA_MAX_BYTES="2048")
    port = int(media_env["LULL_MEDIA_HOSTS"].rsplit(":", 1)[1])
    cdn.put("big.png", png(64, 64, noise=True), "image/png")
    cdn.chunked = True  # no Content-Length: the cap is found while streaming
    async with _Serving(sender, media_port):
        url = _link(sender, Target("messenger", "p1", url=_cdn_url(port, "big.png")))
        async with aiohttp.ClientSession() as session:
            try:
                async with session.get(url) as response:
                    body = await response.read()
                    whole = response.status == 200 and len(body) == len(cdn.files["big.png"].body)
            except aiohttp.ClientPayloadError:
                whole = False
    assert not whole
    text = generate_latest(sender.registry).decode()
    assert 'lull_media_refusals_total{reason="too_large"} 1.0' in text


async def test_a_slow_meta_times_out(
    make_sender: MakeSender,
    media_env: dict[str, str],
    whatsapp_media_store: FakeMedia,
    media_port: int,
) -> None:
    sender = await make_sender(**media_env, LULL_MEDIA_TIMEOUT_MS="100")
    whatsapp_media_store.put("m1", png(), "image/png", ACCOUNT)
    whatsapp_media_store.latency_ms = 2000
    async with _Serving(sender, media_port):
        started = time.monotonic()
        status, _body = await _get(_link(sender, Target("whatsapp", ACCOUNT, media_id="m1")))
    assert status == 504
    assert time.monotonic() - started < 1.5
    text = generate_latest(sender.registry).decode()
    assert 'lull_media_refusals_total{reason="timeout"} 1.0' in text


async def test_downloads_beyond_the_concurrency_bound_are_refused_busy(
    make_sender: MakeSender,
    media_env: dict[str, str],
    cdn: FakeCdn,
    media_port: int,
) -> None:
    sender = await make_sender(**media_env, LULL_MEDIA_CONCURRENCY="1")
    port = int(media_env["LULL_MEDIA_HOSTS"].rsplit(":", 1)[1])
    cdn.put("a.png", png(), "image/png")
    cdn.latency_ms = 1000
    url = _link(sender, Target("messenger", "p1", url=_cdn_url(port, "a.png")))
    async with _Serving(sender, media_port):
        first = asyncio.create_task(_get(url))
        await cdn.requested.wait()  # the first download holds the only slot
        status, _body = await _get(url)
        assert status == 503
        assert cdn.requests == ["a.png"]
        assert (await first)[0] == 200


async def test_the_fake_download_url_lasts_five_minutes_and_needs_the_token(
    graph_server_url: str, whatsapp_media_store: FakeMedia
) -> None:
    image = png()
    whatsapp_media_store.put("m1", image, "image/png", ACCOUNT)
    auth = {"Authorization": "Bearer wa-token"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{graph_server_url}/v23.0/m1", headers=auth) as response:
            answer = await response.json()
        assert answer["file_size"] == str(len(image))
        assert answer["sha256"] == hashlib.sha256(image).hexdigest()
        async with session.get(answer["url"]) as response:
            assert response.status == 401  # a generic GET does not return the media
        async with session.get(answer["url"], headers=auth) as response:
            assert (response.status, await response.read()) == (200, image)
        whatsapp_media_store.clock_offset_s = 301
        async with session.get(answer["url"], headers=auth) as response:
            assert response.status == 404
        bad = {"Authorization": "Bearer page-token"}
        async with session.get(f"{graph_server_url}/v23.0/m1", headers=bad) as response:
            assert response.status == 401
    assert base64.b64decode(whatsapp_media_store.put("m2", image, "image/png", ACCOUNT))


class _Serving:
    """The sender's media server on media_port, for one block."""

    def __init__(self, sender: Sender, port: int) -> None:
        assert sender.media is not None
        app = sender.media.app()
        assert app is not None
        self._server = TestServer(app, port=port)

    async def __aenter__(self) -> None:
        await self._server.start_server()

    async def __aexit__(self, *exc: object) -> None:
        await self._server.close()
