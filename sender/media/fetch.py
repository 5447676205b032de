"""Fetching media from Meta, within the allowlist, the size cap, the timeouts and the slots.

WhatsApp (Meta's Media reference): `GET /{version}/{media-id}?phone_number_id=…` with the
phone number's token answers `{url, mime_type, sha256, file_size, id}`; the url is valid
for 5 minutes and is fetched with the same token. Messenger and Instagram: the webhook's
CDN URL, fetched as it is (it carries its own signature and expiry; no token is sent).
Redirects are followed by hand, each hop checked against the allowlist.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson

from lull.common.access_tokens import DEFAULT_ACCOUNT
from lull.sender.graph.routes import GraphRoutes
from lull.sender.media.hosts import Allowlist
from lull.sender.media.metrics import MediaMetrics
from lull.sender.media.signing import Target

MAX_REDIRECTS: Final = 3
CHUNK_BYTES: Final = 64 * 1024


class Refused(Exception):
    """A fetch that is not done, or not finished: the HTTP status to answer and why."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass
class Upstream:
    """An open response from Meta, its body not yet read."""

    response: aiohttp.ClientResponse
    mime_type: str
    size: int | None
    max_bytes: int

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body; Refused("too_large") as soon as it passes the cap."""
        read = 0
        async for chunk in self.response.content.iter_chunked(CHUNK_BYTES):
            read += len(chunk)
            if read > self.max_bytes:
                raise Refused(413, "too_large", f"more than {self.max_bytes} bytes")
            yield chunk


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """The bounds every fetch runs in."""

    max_bytes: int
    timeout_s: float
    concurrency: int


class MediaFetcher:
    """Opens media from Meta for one sender replica (links served, inline data, transcripts)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        allowlist: Allowlist,
        routes: GraphRoutes,
        graph_version: str,
        tokens: Mapping[str, str],
        limits: FetchLimits,
        metrics: MediaMetrics,
    ) -> None:
        self._session = session
        self.allowlist = allowlist
        self._routes = routes
        self._version = graph_version
        # Read per call, not copied: the accounts file's tokens change on a reload.
        self._tokens = tokens
        self.limits = limits
        self.metrics = metrics
        self._slots = asyncio.Semaphore(limits.concurrency)
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=limits.timeout_s, sock_read=limits.timeout_s
        )

    def __repr__(self) -> str:
        return f"MediaFetcher({self.allowlist!r}, accounts={sorted(self._tokens)})"

    def refuse(self, platform: str, status: int, reason: str, detail: str = "") -> Refused:
        """Count a refusal and return it to raise."""
        self.metrics.refusals.labels(reason).inc()
        self.metrics.downloads.labels(platform, reason).inc()
        return Refused(status, reason, detail)

    @asynccontextmanager
    async def opened(
        self, target: Target, *, wait: bool, max_bytes: int | None = None
    ) -> AsyncIterator[Upstream]:
        """The target's bytes, open, within a download slot (wait: for one, else Refused
        "busy" at once); the response is released on exit."""
        if not wait and self._slots.locked():
            raise self.refuse(target.platform, 503, "busy", "every download slot is taken")
        async with self._slots:
            cap = min(max_bytes or self.limits.max_bytes, self.limits.max_bytes)
            try:
                upstream = await self._open(target, cap)
            except TimeoutError:
                raise self.refuse(target.platform, 504, "timeout", "Meta was too slow") from None
            except aiohttp.ClientError as exc:
                raise self.refuse(target.platform, 502, "upstream", type(exc).__name__) from None
            try:
                yield upstream
            except TimeoutError:
                raise self.refuse(target.platform, 504, "timeout", "Meta was too slow") from None
            except aiohttp.ClientError as exc:
                raise self.refuse(target.platform, 502, "upstream", type(exc).__name__) from None
            except Refused as exc:
                raise self.refuse(target.platform, exc.status, exc.reason, exc.detail) from None
            finally:
                upstream.response.release()

    async def read(self, target: Target, max_bytes: int) -> tuple[bytes, str]:
        """The whole body (at most max_bytes) and its MIME type; waits for a slot."""
        async with self.opened(target, wait=True, max_bytes=max_bytes) as upstream:
            body = b"".join([chunk async for chunk in upstream.chunks()])
        self.count(target.platform, len(body))
        return body, upstream.mime_type

    def count(self, platform: str, size: int) -> None:
        """A download finished: size bytes."""
        self.metrics.downloads.labels(platform, "ok").inc()
        self.metrics.bytes.labels(platform).inc(size)

    async def _open(self, target: Target, max_bytes: int) -> Upstream:
        if target.media_id is not None:
            token = self._token(target)
            url, mime, size = await self._resolve(target, token)
            headers = {"Authorization": f"Bearer {token}"}
        else:
            assert target.url is not None
            url, mime, size, headers = target.url, "", None, {}
        if size is not None and size > max_bytes:
            raise self.refuse(target.platform, 413, "too_large", f"{size} bytes")
        response = await self._follow(target, url, headers)
        length = response.content_length
        if length is not None and length > max_bytes:
            response.release()
            raise self.refuse(target.platform, 413, "too_large", f"{length} bytes")
        content_type = response.headers.get("Content-Type", "")
        return Upstream(response, mime or content_type or "application/octet-stream",
                        size or length, max_bytes)  # fmt: skip

    def _token(self, target: Target) -> str:
        token = self._tokens.get(target.account_id) or self._tokens.get(DEFAULT_ACCOUNT)
        if not token:
            raise self.refuse(target.platform, 404, "no_token", "no token for the account")
        return token

    async def _resolve(self, target: Target, token: str) -> tuple[str, str, int | None]:
        """WhatsApp's media URL, MIME type and size for a media id."""
        base = self._routes.bases.get("whatsapp", self._routes.default_base)
        url = f"{base}/{self._version}/{target.media_id}"
        if not self.allowlist.allows(url):
            raise self.refuse(target.platform, 403, "host", "the Graph host is not allowed")
        async with self._session.get(
            url,
            params={"phone_number_id": target.account_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=self.limits.timeout_s),
            allow_redirects=False,
        ) as response:
            body = await response.read()
        if response.status >= 500:
            raise self.refuse(target.platform, 502, "upstream", f"Graph API {response.status}")
        if response.status != 200:
            # Meta answers 4xx for an unknown or expired id (webhook ids last 7 days).
            raise self.refuse(target.platform, 404, "upstream", f"Graph API {response.status}")
        doc = _json(body)
        media_url = doc.get("url")
        if not isinstance(media_url, str):
            raise self.refuse(target.platform, 502, "upstream", "no url in Meta's answer")
        mime = doc.get("mime_type")
        return media_url, mime if isinstance(mime, str) else "", _size(doc.get("file_size"))

    async def _follow(
        self, target: Target, url: str, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """GET url, following redirects inside the allowlist only."""
        for _hop in range(MAX_REDIRECTS + 1):
            if not self.allowlist.allows(url):
                raise self.refuse(target.platform, 403, "host", "not on LULL_MEDIA_HOSTS")
            response = await self._session.get(
                url, headers=headers, timeout=self._timeout, allow_redirects=False
            )
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                location = urljoin(str(response.url), response.headers["Location"])
                response.release()
                if urlsplit(location).netloc != urlsplit(url).netloc:
                    # The token is for the host Meta named; another host gets none.
                    headers = {}
                url = location
                continue
            if response.status != 200:
                response.release()
                status = 404 if response.status in (403, 404, 410) else 502
                raise self.refuse(target.platform, status, "upstream", f"HTTP {response.status}")
            return response
        raise self.refuse(target.platform, 502, "upstream", "too many redirects")


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _size(value: object) -> int | None:
    # Meta's examples give file_size as a string ("303833"); some answers as a number.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
