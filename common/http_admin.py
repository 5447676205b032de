"""The small HTTP server processor and sender run for /metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from lull.common.http_log import app_runner
from lull.common.metrics import metrics_handler
from lull.common.redis_conn import REDIS_FAILURES, RedisClient

READY_TIMEOUT_S = 2.0


def admin_app(registry: CollectorRegistry, client: RedisClient) -> web.Application:
    """Metrics, liveness and readiness (Redis answers) on one app."""
    app = web.Application()

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await client.ping()
        except REDIS_FAILURES as exc:
            return web.json_response({"redis": type(exc).__name__}, status=503)
        return web.json_response({"redis": "ok"})

    app.router.add_get("/metrics", metrics_handler(registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(app: web.Application, host: str, port: int) -> Callable[[], Awaitable[None]]:
    """Start app on host:port (port 0: disabled); returns the coroutine that stops it."""
    if port == 0:

        async def nothing() -> None:
            return None

        return nothing
    runner = app_runner(app, "metrics")
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner.cleanup
