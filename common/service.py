"""What every service's main does: settings or a one-line error, logging, loop, signals."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry

from lull.common.env import ConfigError, problems_of
from lull.common.event_loop import new_event_loop
from lull.common.http_admin import admin_app, serve
from lull.common.log import configure
from lull.common.redis_conn import RedisClient
from lull.common.settings import LOG_LEVELS, CommonSettings

S = TypeVar("S")
ONE_SHOT_LOG_LEVEL = "warning"


class StartFailed(Exception):
    """A start-up step failed for a reason the operator fixes (a port in use): the service
    prints one line and exits 1."""


def run_main(
    service: str,
    load: Callable[[], S],
    common_of: Callable[[S], CommonSettings],
    body: Callable[[S], Awaitable[int]],
    *,
    one_shot: bool = False,
) -> int:
    """Validate settings (exit 2 with one line per problem, each naming its variable), then
    run body. one_shot: an operator command that ends by itself (its loggers are not cached,
    and it logs warnings and errors only).

    A configuration problem found later in start-up (a python: handler) is reported the
    same way. SIGINT or SIGTERM before body installs its own handlers stops it cleanly
    (exit 0); a Ctrl-C that lands after them ends with 130, never with a traceback."""
    try:
        settings = load()
    except ConfigError as exc:
        return report_config_error(service, exc)
    common = common_of(settings)
    level = common.log_level
    if one_shot and LOG_LEVELS.index(level) < LOG_LEVELS.index(ONE_SHOT_LOG_LEVEL):
        # An operator command's answer is what it prints; an info line beside it (a batch
        # emitted by lull flush) is noise. Warnings and errors still show.
        level = ONE_SHOT_LOG_LEVEL
    configure(common.log_format, level, service, cache_loggers=not one_shot)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(_stoppable(body(settings)))
    except ConfigError as exc:
        return report_config_error(service, exc)
    except StartFailed as exc:
        print(f"lull {service}: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def report_config_error(service: str, error: ConfigError) -> int:
    """Print one line per problem to stderr; returns the exit code for bad configuration."""
    for problem in problems_of(error):
        print(f"lull {service}: bad configuration: {problem}", file=sys.stderr)
    return 2


async def _stoppable(body: Awaitable[int]) -> int:
    """Run body; a signal before body takes SIGINT/SIGTERM over cancels it (a start-up that
    waits for Redis), and that is a clean stop: whatever body opened, it closes."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(body)
    signalled = False

    def cancel() -> None:
        nonlocal signalled
        signalled = True
        task.cancel()

    # Signals reach the main thread only (an operator command may run in a test's thread).
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, cancel)
    try:
        return await task
    except asyncio.CancelledError:
        if not signalled:
            raise
        return 0


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
    try:
        stop_admin = await serve(admin_app(registry, client), metrics_host, metrics_port)
    except OSError as exc:
        raise StartFailed(
            f"cannot serve /metrics on {metrics_host}:{metrics_port} (LULL_METRICS_HOST and "
            f"the service's LULL_*_METRICS_PORT; 0 turns it off): {exc}"
        ) from None
    try:
        await run()
    finally:
        await stop_admin()
