"""What every service's main does: settings or a one-line error, logging, loop, signals."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry

from lull.common.env import ConfigError
from lull.common.http_admin import admin_app, serve
from lull.common.log import configure
from lull.common.loop import new_event_loop
from lull.common.redis_conn import RedisClient
from lull.common.settings import CommonSettings

S = TypeVar("S")


def run_main(
    service: str,
    load: Callable[[], S],
    common_of: Callable[[S], CommonSettings],
    body: Callable[[S], Awaitable[int]],
    *,
    one_shot: bool = False,
) -> int:
    """Validate settings (exit 2 with one line naming the variable), then run body.
    one_shot: an operator command that ends by itself (its loggers are not cached)."""
    try:
        settings = load()
    except ConfigError as exc:
        print(f"lull {service}: bad configuration: {exc}", file=sys.stderr)
        return 2
    common = common_of(settings)
    configure(common.log_format, common.log_level, service, cache_loggers=not one_shot)
    loop = new_event_loop()
    try:
        return loop.run_until_complete(body(settings))
    finally:
        loop.close()


async def until_signalled() -> None:
    """Return on the first SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, signalled.set)
    try:
        await signalled.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def run_replica(
    *,
    run: Callable[[], Awaitable[None]],
    request_stop: Callable[[], None],
    registry: CollectorRegistry,
    client: RedisClient,
    metrics_host: str,
    metrics_port: int,
) -> None:
    """Serve /metrics, /healthz, /readyz and run until SIGTERM or SIGINT asks run to stop."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop)
    stop_admin = await serve(admin_app(registry, client), metrics_host, metrics_port)
    try:
        await run()
    finally:
        await stop_admin()
