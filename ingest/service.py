"""`lull ingest`: run the webhook server until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

import structlog
from aiohttp import web

from common.env import ConfigError
from common.log import configure
from common.loop import new_event_loop
from common.redis_conn import describe
from ingest.app import create_app, serve_metrics_port
from ingest.settings import IngestSettings

# aiohttp waits this long for in-flight requests after SIGTERM; below the 10 s bound.
SHUTDOWN_TIMEOUT_S = 8.0


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run ingest; returns the process exit code."""
    try:
        settings = IngestSettings.from_env(environ)
    except ConfigError as exc:
        print(f"lull ingest: bad configuration: {exc}", file=sys.stderr)
        return 2
    configure(settings.common.log_format, settings.common.log_level, "ingest")
    log = structlog.get_logger("lull.ingest")
    log.info(
        "ingest starting",
        host=settings.host,
        port=settings.port,
        metrics_host=settings.metrics_host,
        metrics_port=settings.metrics_port,
        public_metrics=settings.public_metrics,
        redis=describe(settings.common.effective_redis_url),
        namespace=settings.common.namespace,
    )
    if settings.insecure_skip_signature:
        log.warning(
            "signature checks are OFF (LULL_INSECURE_SKIP_SIGNATURE=1): never in production"
        )
    app = create_app(settings)
    serve_metrics_port(app)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            print=None,
            loop=new_event_loop(),
        )
    except OSError as exc:
        # A port in use or an address not on this host: one line, not a traceback.
        log.error("ingest cannot listen", error=str(exc))
        return 1
    log.info("ingest stopped")
    return 0


def run(_args: argparse.Namespace) -> int:
    """`lull ingest`: settings come from the environment."""
    return main()
