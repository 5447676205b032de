"""`lull sender`: run one sender replica until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import structlog

from lull.common.http_admin import serve
from lull.common.redis_conn import connect, describe
from lull.common.service import StartFailed, run_main, run_replica
from lull.sender.app import Sender
from lull.sender.bot import handler_target
from lull.sender.settings import SenderSettings

# Above the consumer's short XREADGROUP block, so a blocked read never times out by itself.
REDIS_TIMEOUT_S = 5.0


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the sender; returns the process exit code."""
    return run_main("sender", lambda: SenderSettings.from_env(environ), lambda s: s.common, _run)


async def _run(settings: SenderSettings) -> int:
    log = structlog.get_logger("lull.sender")
    url = settings.common.effective_redis_url
    log.info("sender connecting to Redis", redis=describe(url), setting="LULL_REDIS_URL")
    client = connect(url, timeout_s=REDIS_TIMEOUT_S, cluster=settings.common.redis_cluster)
    try:
        sender = await Sender.create(client, settings)
    except BaseException:
        await client.aclose()  # a stop while waiting for Redis, or a handler not built
        raise
    if not sender.tokens and not sender.bot.forward_only:
        log.warning(
            "no access token (LULL_ACCESS_TOKENS, LULL_ACCOUNTS): every reply will be dead-lettered"
        )
    log.info(
        "sender starting",
        redis=describe(url),
        namespace=settings.common.namespace,
        shards=settings.common.shards,
        handler=sender.bot.name,
        handler_target=handler_target(settings.handler),
        graph=dict(settings.graph_routes.bases),
        instagram_login=settings.graph_routes.instagram_login,
        accounts=len(sender.tokens),
        metrics_port=settings.metrics_port,
    )
    media_app = sender.media.app() if sender.media is not None else None
    stop_media = None
    try:
        if media_app is not None:
            media = settings.media
            try:
                stop_media = await serve(media_app, media.host, media.port)
            except OSError as exc:
                raise StartFailed(
                    f"cannot serve media links on {media.host}:{media.port} "
                    f"(LULL_MEDIA_HOST, LULL_MEDIA_PORT): {exc}"
                ) from None
            log.info("media links served", host=media.host, port=media.port,
                     public_url=media.public_url)  # fmt: skip
        await run_replica(
            run=sender.run,
            request_stop=sender.request_stop,
            registry=sender.registry,
            client=client,
            metrics_host=settings.metrics_host,
            metrics_port=settings.metrics_port,
        )
    finally:
        if stop_media is not None:
            await stop_media()
        await sender.close()
        await client.aclose()
    log.info("sender stopped")
    return 0


def run(_args: argparse.Namespace) -> int:
    """`lull sender`: settings come from the environment."""
    return main()
