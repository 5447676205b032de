"""`lull sender`: run one sender replica until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping

import structlog

from common.env import ConfigError
from common.http_admin import admin_app, serve
from common.log import configure
from common.loop import new_event_loop
from common.redis_conn import connect, describe
from sender.app import Sender
from sender.settings import SenderSettings

REDIS_TIMEOUT_S = 5.0


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the sender; returns the process exit code."""
    try:
        settings = SenderSettings.from_env(environ)
    except ConfigError as exc:
        print(f"lull sender: bad configuration: {exc}", file=sys.stderr)
        return 2
    configure(settings.common.log_format, settings.common.log_level, "sender")
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_run(settings))
    finally:
        loop.close()


async def _run(settings: SenderSettings) -> int:
    log = structlog.get_logger("lull.sender")
    url = settings.common.effective_redis_url
    client = connect(url, timeout_s=REDIS_TIMEOUT_S)
    sender = await Sender.create(client, settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, sender.request_stop)
    stop_admin = await serve(
        admin_app(sender.registry, client), settings.metrics_host, settings.metrics_port
    )
    if not settings.access_tokens and not sender.handler.forward_only:
        log.warning("LULL_ACCESS_TOKENS is empty: every reply will be dead-lettered")
    log.info(
        "sender starting",
        redis=describe(url),
        namespace=settings.common.namespace,
        shards=settings.common.shards,
        handler=sender.handler.name,
        graph=settings.graph_base,
        accounts=len(settings.access_tokens),
        metrics_port=settings.metrics_port,
    )
    try:
        await sender.run()
    finally:
        await sender.close()
        await stop_admin()
        await client.aclose()
    log.info("sender stopped")
    return 0
