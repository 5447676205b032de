"""Fake media, written from Meta's pages: WhatsApp's media endpoints on the fake Graph API,
and a fake CDN for Messenger and Instagram attachment URLs.

WhatsApp (Media reference): `GET /{version}/{media-id}` with the phone number's token
answers `{messaging_product, url, mime_type, sha256, file_size, id}`; the url is valid for
5 minutes and must be fetched with a token ("a generic GET will not return the media").
Here the url is `{this host}/whatsapp_business/attachments/?mid=…&ext=…&hash=…`, shaped
like Meta's lookaside URL; it answers 404 after its 5 minutes or for a wrong hash, and 401
without the token of the account that owns the media. `?phone_number_id=` is honoured.

The CDN (`create_fake_cdn_app`): `GET /cdn/{name}` answers the bytes put there, optionally
after a delay or through a redirect; every request is recorded, so a test sees that a
refused link never reached it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson
from aiohttp import web

from lull.dev.fake_transcribe import FakeTranscriber
from lull.dev.media_files import ogg_opus, png
from lull.ops.simulate_payloads import DEMO_MEDIA, PICTURE, VOICE

# Meta's media URL "is only valid for 5 minutes".
MEDIA_URL_TTL_S: Final = 300
_HASH_KEY: Final = b"fake-media-url-key"


@dataclass
class StoredMedia:
    """One file as Meta holds it."""

    body: bytes
    mime_type: str
    owner: str
    """The phone number id (WhatsApp) whose token may fetch it; "" on the CDN."""


@dataclass
class FakeMedia:
    """WhatsApp media the fake Graph API holds, and what was asked of it."""

    tokens: dict[str, str] | None
    files: dict[str, StoredMedia] = field(default_factory=dict)
    resolves: list[str] = field(default_factory=list)
    """Media ids asked for with `GET /{media-id}` (any answer)."""
    downloads: list[str] = field(default_factory=list)
    """Media ids whose download URL was requested (any answer)."""
    latency_ms: int = 0
    """Delay before the download's headers (a slow Meta)."""
    clock_offset_s: int = 0
    """Added to the clock the download URL's expiry is checked against (tests: 'later')."""
    size_claim: dict[str, int] = field(default_factory=dict)
    """file_size to answer instead of the real one."""
    moved: dict[str, str] = field(default_factory=dict)
    """media id → URL its download answers 302 with (after the token check)."""

    def put(self, media_id: str, body: bytes, mime_type: str, owner: str) -> str:
        """Hold a file; its sha256 as Meta gives it in webhooks (base64)."""
        self.files[media_id] = StoredMedia(body, mime_type, owner)
        return base64.b64encode(hashlib.sha256(body).digest()).decode()

    def allowed(self, owner: str, token: str | None) -> bool:
        """Whether token may act for owner (any known token for demo media, owner "")."""
        if not token:
            return False
        if self.tokens is None:
            return True
        return token in self.tokens.values() if not owner else self.tokens.get(owner) == token


FAKE_MEDIA: Final = web.AppKey("fake_media", FakeMedia)


def add_media_routes(app: web.Application, tokens: Mapping[str, str] | None) -> FakeMedia:
    """Serve WhatsApp's media endpoints from app (the fake Graph API)."""
    media = FakeMedia(None if tokens is None else dict(tokens))
    app[FAKE_MEDIA] = media
    app.router.add_get("/{version:v[0-9.]+}/{media_id}", retrieve_media_url)
    app.router.add_get("/whatsapp_business/attachments/", download_media)
    return media


def _url_hash(media_id: str, expires_s: int) -> str:
    return hmac.new(_HASH_KEY, f"{media_id}:{expires_s}".encode(), hashlib.sha256).hexdigest()


async def retrieve_media_url(request: web.Request) -> web.Response:
    """`GET /{version}/{media-id}`: the media's URL and facts, for its owner's token."""
    media = request.app[FAKE_MEDIA]
    media_id = request.match_info["media_id"]
    media.resolves.append(media_id)
    stored = media.files.get(media_id)
    token = _token(request)
    phone = request.query.get("phone_number_id")
    # Demo media (owner "") belongs to every account: `make run` takes any phone number id.
    if stored is None or (phone is not None and stored.owner and phone != stored.owner):
        return _graph_error(404, 100, "Unsupported get request.")
    if not media.allowed(stored.owner, token):
        return _graph_error(401, 190, "Invalid OAuth access token.")
    expires_s = int(time.time()) + MEDIA_URL_TTL_S
    url = request.url.with_path("/whatsapp_business/attachments/").with_query(
        {"mid": media_id, "ext": str(expires_s), "hash": _url_hash(media_id, expires_s)}
    )
    size = media.size_claim.get(media_id, len(stored.body))
    return web.json_response(
        {
            "messaging_product": "whatsapp",
            "url": str(url),
            "mime_type": stored.mime_type,
            "sha256": hashlib.sha256(stored.body).hexdigest(),
            "file_size": str(size),
            "id": media_id,
        }
    )


async def download_media(request: web.Request) -> web.StreamResponse:
    """The media URL: within its 5 minutes, with the owner's token."""
    media = request.app[FAKE_MEDIA]
    media_id = request.query.get("mid", "")
    media.downloads.append(media_id)
    if media.latency_ms:
        await asyncio.sleep(media.latency_ms / 1000)
    stored = media.files.get(media_id)
    ext = request.query.get("ext", "")
    good = ext.isdigit() and hmac.compare_digest(
        _url_hash(media_id, int(ext)), request.query.get("hash", "")
    )
    if stored is None or not good or int(ext) < time.time() + media.clock_offset_s:
        return web.Response(status=404, text="URL signature expired")
    if not media.allowed(stored.owner, _token(request)):
        return web.Response(status=401, text="unauthorized")
    if media_id in media.moved:
        raise web.HTTPFound(media.moved[media_id])
    return web.Response(body=stored.body, content_type=stored.mime_type)


@dataclass
class FakeCdn:
    """Files on a fake CDN, and every request it got."""

    files: dict[str, StoredMedia] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    """The Authorization header of each request (a CDN needs none)."""
    latency_ms: int = 0
    redirects: dict[str, str] = field(default_factory=dict)
    """name → absolute URL to answer 302 with."""
    chunked: bool = False
    """Send no Content-Length (the size is known only by reading)."""
    requested: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at the first request."""

    def put(self, name: str, body: bytes, mime_type: str) -> None:
        """Serve body at /cdn/{name}."""
        self.files[name] = StoredMedia(body, mime_type, "")


FAKE_CDN: Final = web.AppKey("fake_cdn", FakeCdn)


def create_fake_cdn_app() -> web.Application:
    """A fake CDN; its state is app[FAKE_CDN]."""
    app = web.Application()
    add_cdn_routes(app)
    return app


def add_cdn_routes(app: web.Application) -> FakeCdn:
    """Serve a fake CDN's `GET /cdn/{name}` from app."""
    app[FAKE_CDN] = FakeCdn()
    app.router.add_get("/cdn/{name}", cdn_file)
    return app[FAKE_CDN]


# What the demo voice note (`lull simulate --media`) says, as the fake transcriber hears it.
DEMO_WORDS: Final = "this is a voice note from lull simulate"


def add_demo_media(media: FakeMedia, cdn: FakeCdn, transcriber: FakeTranscriber) -> None:
    """`lull simulate --media`'s picture and voice note: WhatsApp media ids on the fake Graph
    API, CDN paths for Messenger and Instagram, and the voice note's words."""
    picture, voice = DEMO_MEDIA[PICTURE], DEMO_MEDIA[VOICE]
    image, note = png(96, 64), ogg_opus(100)
    media.put(picture["id"], image, picture["mime_type"], "")
    media.put(voice["id"], note, voice["mime_type"], "")
    cdn.put(picture["path"].rsplit("/", 1)[1], image, picture["mime_type"])
    cdn.put(voice["path"].rsplit("/", 1)[1], note, voice["mime_type"])
    transcriber.speak(note, DEMO_WORDS)


async def cdn_file(request: web.Request) -> web.StreamResponse:
    """One file, as a CDN serves it: no token needed."""
    cdn = request.app[FAKE_CDN]
    name = request.match_info["name"]
    cdn.requests.append(name)
    cdn.authorizations.append(request.headers.get("Authorization"))
    cdn.requested.set()
    if cdn.latency_ms:
        await asyncio.sleep(cdn.latency_ms / 1000)
    if name in cdn.redirects:
        raise web.HTTPFound(cdn.redirects[name])
    stored = cdn.files.get(name)
    if stored is None:
        return web.Response(status=404, text="not found")
    if not cdn.chunked:
        return web.Response(body=stored.body, content_type=stored.mime_type)
    response = web.StreamResponse()
    response.content_type = stored.mime_type
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(stored.body)
    await response.write_eof()
    return response


def _token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _graph_error(status: int, code: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "OAuthException", "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
