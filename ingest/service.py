"""`lull ingest`: run the webhook server until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping

import structlog
from aiohttp import web

from lull.common.http_log import app_runner
from lull.common.redis_conn import describe
from lull.common.service import run_main, until_signalled
from lull.common.startup import until_redis_answers
from lull.ingest.app import REDIS, SETTINGS, create_app, serve_admin_port, serve_metrics_port
from lull.ingest.settings import IngestSettings

# aiohttp waits this long for in-flight requests after SIGTERM; below the 10 s bound.
SHUTDOWN_TIMEOUT_S = 8.0


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run ingest; returns the process exit code."""
    return run_main("ingest", lambda: IngestSettings.from_env(environ), lambda s: s.common, _serve)


async def _serve(settings: IngestSettings) -> int:
    log = structlog.get_logger("lull.ingest")
    admin = settings.admin
    log.info(
        "ingest starting",
        host=settings.host,
        port=settings.port,
        metrics_host=settings.metrics_host,
        metrics_port=settings.metrics_port,
        public_metrics=settings.public_metrics,
        admin_api=f"{admin.host}:{admin.port}" if admin.enabled else "off",
        send_api="on" if settings.api.enabled else "off",
        redis=describe(settings.common.effective_redis_url),
        namespace=settings.common.namespace,
        accounts_file=settings.accounts.file.path
        if settings.accounts is not None and settings.accounts.file is not None
        else "none",
    )
    if settings.api.enabled and not settings.api.accounts:
        log.warning(
            "LULL_ACCESS_TOKENS is empty here: the send API refuses every account "
            "(give ingest the sender's LULL_ACCESS_TOKENS)"
        )
    if settings.insecure_skip_signature:
        log.warning(
            "signature checks are OFF (LULL_INSECURE_SKIP_SIGNATURE=1): never in production"
        )
    app = create_app(settings)
    serve_metrics_port(app)
    serve_admin_port(app)
    # aiohttp waits up to shutdown_timeout for in-flight requests once the site stops.
    runner = app_runner(app, "webhook", shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    try:  # as web.run_app does: clean up whatever the setup started, also when it failed
        try:
            await runner.setup()
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as exc:
            # A port in use or an address not on this host: one line, not a traceback.
            log.error("ingest cannot listen", error=str(exc))
            return 1
        # Webhooks are answered 503 (Meta retries them) and /readyz fails until Redis
        # answers; this says so in the log instead of starting silently.
        stop_checking = asyncio.Event()
        checking = asyncio.create_task(_until_redis_answers(app, stop_checking))
        try:
            await until_signalled()
        finally:
            stop_checking.set()
            await checking
    finally:
        await runner.cleanup()
    log.info("ingest stopped")
    return 0


async def _until_redis_answers(app: web.Application, stop: asyncio.Event) -> None:
    settings = app[SETTINGS]
    client = app[REDIS]
    timeout_s = settings.redis_timeout_ms / 1000

    async def ping() -> None:
        async with asyncio.timeout(timeout_s):
            await client.ping()

    url = settings.common.effective_redis_url
    if await until_redis_answers(ping, "ping", url, stop):
        structlog.get_logger("lull.ingest").info("ingest ready", redis=describe(url))


def run(_args: argparse.Namespace) -> int:
    """`lull ingest`: settings come from the environment."""
    return main()
