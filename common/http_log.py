"""What aiohttp's HTTP server logs about the requests it refuses, made fit for a public port.

aiohttp answers a request it cannot parse (a line or header over its limits, Content-Length
beside Transfer-Encoding, a broken chunk) with 400, and logs it through its server logger
with `logger.exception(...)`: ERROR and a traceback of ~45 lines, for anyone who can open a
connection, no signature needed. Every lull port runs with app_runner's logger instead: a
malformed request is one WARNING line (what, from where, the parser's reason cut short), at
most LINES_PER_WINDOW a minute per port, and the next line says how many went unlogged.
What is not a malformed request (a handler that raised: a bug of ours) keeps its ERROR and
traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from lull.common.outside_text import cut, printable

LINES_PER_WINDOW: Final = 10
WINDOW_S: Final = 60.0
REASON_MAX_CHARS: Final = 200
"""aiohttp's reason may quote the offending line (a 9 KB query, a 100 KB header)."""


class HttpServerLog(logging.Logger):
    """aiohttp's server logger for one port (its `logger=`); not registered with logging, so
    each port has its own budget. Whatever it does not take over goes to `aiohttp.server`."""

    def __init__(
        self,
        port: str,
        *,
        lines_per_window: int = LINES_PER_WINDOW,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("aiohttp.server")
        self.parent = logging.getLogger("aiohttp.server")
        self.port = port
        self._out = structlog.get_logger("lull.http")
        self._lines_per_window = lines_per_window
        self._window_s = window_s
        self._clock = clock
        self._window_start = -window_s
        self._lines = 0
        self._unlogged = 0

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        """A malformed request: one rate-limited warning line; anything else as aiohttp
        logs it."""
        if isinstance(exc_info, BaseException):
            exc: BaseException | None = exc_info
        elif isinstance(exc_info, tuple):
            exc = exc_info[1]
        else:
            exc = sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            self.malformed(exc, remote=args[0] if args else None)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def malformed(self, exc: HttpProcessingError, *, remote: object) -> None:
        """Log one refused request, unless this window's lines are spent."""
        now = self._clock()
        if now - self._window_start >= self._window_s:
            self._window_start, self._lines = now, 0
        if self._lines >= self._lines_per_window:
            self._unlogged += 1
            return
        self._lines += 1
        unlogged, self._unlogged = self._unlogged, 0
        self._out.warning(
            "malformed HTTP request refused",
            port=self.port,
            remote=None if remote is None else printable(cut(str(remote), 100)),
            status=exc.code,
            error=type(exc).__name__,
            reason=printable(cut(exc.message, REASON_MAX_CHARS)),
            unlogged_before=unlogged,
        )


def app_runner(app: web.Application, port: str, **kwargs: Any) -> web.AppRunner:
    """An AppRunner for one of lull's ports: no access log, malformed requests logged by
    HttpServerLog. port names the port in those lines (webhook, metrics, admin)."""
    return web.AppRunner(app, access_log=None, logger=HttpServerLog(port), **kwargs)
