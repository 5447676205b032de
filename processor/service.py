"""`lull processor`: run one processor replica until SIGTERM or SIGINT."""

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
from processor.app import Processor
from processor.settings import ProcessorSettings

# Above the consumer's short XREADGROUP block, so a blocked read never times out by itself.
REDIS_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 9.0


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the processor; returns the process exit code."""
    try:
        settings = ProcessorSettings.from_env(environ)
    except ConfigError as exc:
        print(f"lull processor: bad configuration: {exc}", file=sys.stderr)
        return 2
    configure(settings.common.log_format, settings.common.log_level, "processor")
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_run(settings))
    finally:
        loop.close()


async def _run(settings: ProcessorSettings) -> int:
    log = structlog.get_logger("lull.processor")
    url = settings.common.effective_redis_url
    client = connect(url, timeout_s=REDIS_TIMEOUT_S)
    processor = Processor(client, settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, processor.request_stop)
    stop_admin = await serve(
        admin_app(processor.registry, client), settings.metrics_host, settings.metrics_port
    )
    log.info(
        "processor starting",
        redis=describe(url),
        namespace=settings.common.namespace,
        shards=settings.common.shards,
        window_mode=settings.window.mode,
        window_ms=settings.window.window_ms,
        max_wait_ms=settings.window.max_wait_ms,
        metrics_port=settings.metrics_port,
    )
    try:
        await processor.run()
    finally:
        await stop_admin()
        await client.aclose()
    log.info("processor stopped")
    return 0
