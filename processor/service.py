"""`lull processor`: run one processor replica until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import structlog

from lull.common.redis_conn import connect, describe
from lull.common.service import run_main, run_replica
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings

# Above the consumer's short XREADGROUP block, so a blocked read never times out by itself.
REDIS_TIMEOUT_S = 5.0


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the processor; returns the process exit code."""
    return run_main(
        "processor", lambda: ProcessorSettings.from_env(environ), lambda s: s.common, _run
    )


async def _run(settings: ProcessorSettings) -> int:
    log = structlog.get_logger("lull.processor")
    url = settings.common.effective_redis_url
    client = connect(url, timeout_s=REDIS_TIMEOUT_S, cluster=settings.common.redis_cluster)
    processor = Processor(client, settings)
    log.info(
        "processor starting",
        redis=describe(url),
        namespace=settings.common.namespace,
        shards=settings.common.shards,
        inbound_streams=len(processor.keys.all_inbound()),
        window_mode=settings.window.mode,
        window_ms=settings.window.window_ms,
        max_wait_ms=settings.window.max_wait_ms,
        metrics_port=settings.metrics_port,
    )
    try:
        await run_replica(
            run=processor.run,
            request_stop=processor.request_stop,
            registry=processor.registry,
            client=client,
            metrics_host=settings.metrics_host,
            metrics_port=settings.metrics_port,
        )
    finally:
        await client.aclose()
    log.info("processor stopped")
    return 0


def run(_args: argparse.Namespace) -> int:
    """`lull processor`: settings come from the environment."""
    return main()
