"""The media server: GET a signed link, get the bytes streamed from Meta.

Its own port (LULL_MEDIA_PORT), never the webhook's: it is for the bot, not for Meta. Every
request is checked before anything is fetched: a wrong signature is 403, an expired link
410, a host off the allowlist 403; nothing reaches Meta for them. Then a download slot
(503 when all LULL_MEDIA_CONCURRENCY are taken), the size cap (413) and the timeouts (504).
"""

from __future__ import annotations

import time
from typing import Final

import structlog
from aiohttp import web

from lull.sender.media.fetch import MediaFetcher, Refused
from lull.sender.media.signing import PREFIX, Signer, target_of

log = structlog.get_logger("lull.sender.media")

MEDIA_FETCHER: Final = web.AppKey("media_fetcher", MediaFetcher)
MEDIA_SIGNER: Final = web.AppKey("media_signer", Signer)


def create_media_app(fetcher: MediaFetcher, signer: Signer) -> web.Application:
    """The media server's app (the fetcher's session is its owner's to close)."""
    app = web.Application()
    app[MEDIA_FETCHER] = fetcher
    app[MEDIA_SIGNER] = signer
    # GET only: a HEAD would fetch from Meta for nothing.
    app.router.add_get(PREFIX + "/{kind}/{rest:.+}", serve_media, allow_head=False)
    return app


async def serve_media(request: web.Request) -> web.StreamResponse:
    """One signed link: check, then stream."""
    fetcher = request.app[MEDIA_FETCHER]
    expires = request.query.get("e", "")
    signature = request.query.get("s", "")
    if not expires.isdigit() or not signature:
        return _refused(fetcher, 403, "signature", "unsigned link")
    expires_at_s = int(expires)
    if not request.app[MEDIA_SIGNER].valid(request.rel_url.raw_path, expires_at_s, signature):
        return _refused(fetcher, 403, "signature", "bad signature")
    if expires_at_s < time.time():
        return _refused(fetcher, 410, "expired", "link expired")
    target = target_of(request.match_info["kind"], request.match_info["rest"].split("/"))
    if target is None:
        return _refused(fetcher, 404, "malformed", "no such media")
    response = web.StreamResponse()
    try:
        async with fetcher.opened(target, wait=False) as upstream:
            response.content_type = upstream.mime_type
            if upstream.size is not None:
                response.content_length = upstream.size
            response.headers["Cache-Control"] = "private, no-store"
            response.headers["X-Content-Type-Options"] = "nosniff"
            sent = 0
            async for chunk in upstream.chunks():
                if not response.prepared:
                    await response.prepare(request)
                await response.write(chunk)
                sent += len(chunk)
            if not response.prepared:
                await response.prepare(request)
    except Refused as exc:
        if not response.prepared:
            return web.Response(status=exc.status, text=exc.reason + "\n")
        # Headers are out: only a cut connection tells the bot the body is not whole.
        log.warning("media stream cut", platform=target.platform, reason=exc.reason)
        if request.transport is not None:
            request.transport.close()
        return response
    fetcher.count(target.platform, sent)
    await response.write_eof()
    return response


def _refused(fetcher: MediaFetcher, status: int, reason: str, text: str) -> web.Response:
    fetcher.metrics.refusals.labels(reason).inc()
    return web.Response(status=status, text=text + "\n")
