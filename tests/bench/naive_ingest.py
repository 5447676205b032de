"""The baseline: a bare aiohttp handler that checks the HMAC and awaits one XADD per request.

Run as `python -m tests.bench.naive_ingest` with ingest's environment variables; it reads
them through IngestSettings so both servers get the same port, secret and stream.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from lull.common.event_loop import new_event_loop
from lull.common.redis_conn import connect
from lull.common.store.keys import Keys
from lull.ingest.settings import IngestSettings

SETTINGS = web.AppKey("settings", IngestSettings)
REDIS = web.AppKey("redis", aioredis.Redis)
# One connection per concurrent request: redis-py's pool raises rather than waits when empty.
MAX_CONNECTIONS = 1100


def create_app(settings: IngestSettings) -> web.Application:
    """One POST route; a Redis client that starts and stops with the app."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_redis_ctx)
    app.router.add_post("/webhook", receive)
    return app


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[REDIS] = connect(
        settings.common.effective_redis_url,
        timeout_s=settings.redis_timeout_ms / 1000,
        max_connections=MAX_CONNECTIONS,
    )
    yield
    await app[REDIS].aclose()


async def receive(request: web.Request) -> web.Response:
    """Verify X-Hub-Signature-256, await the XADD, answer 200."""
    settings = request.app[SETTINGS]
    body = await request.read()
    given = request.headers.get("X-Hub-Signature-256", "").removeprefix("sha256=")
    expected = hmac.new(settings.app_secrets[0].encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return web.Response(status=401)
    stream = Keys(settings.common.namespace).inbound()
    fields = {b"body": body, b"received_at": int(time.time() * 1000)}
    await request.app[REDIS].xadd(stream, fields)  # type: ignore[arg-type]
    return web.Response(status=200)


def main() -> int:
    """Serve until SIGINT or SIGTERM."""
    settings = IngestSettings.from_env()
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=None,
        loop=new_event_loop(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
