"""structlog set-up: JSON lines (orjson) in production, console rendering on a terminal."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def _orjson_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=default).decode()  # type: ignore[arg-type]


class _StderrLogger:
    """Prints each line to sys.stderr as it is at the time of the call, so a logger cached
    on first use keeps working when stderr is replaced (a CLI run in-process by a test)."""

    def msg(self, message: str) -> None:
        """Print one rendered line."""
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = err = fatal = exception = critical = msg


def _stderr_logger(*_args: object) -> _StderrLogger:
    return _StderrLogger()


def configure(log_format: str, level: str, service: str, *, cache_loggers: bool = True) -> None:
    """Route structlog and stdlib logging to stderr in one format, tagged with the service.

    cache_loggers: a service caches each logger on first use (cheaper per line); a one-shot
    command need not, and must not when run in-process by tests that capture logs."""
    numeric = _LEVELS.get(level, logging.ERROR)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=cache_loggers,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
