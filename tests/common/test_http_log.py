"""HttpServerLog: a malformed request is one warning line within a per-port budget; a bug
in a handler keeps aiohttp's ERROR with its traceback."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from structlog.testing import capture_logs

from lull.common.http_log import HttpServerLog


def test_the_budget_is_per_window_and_the_next_line_counts_what_went_unlogged() -> None:
    now = [100.0]
    server_log = HttpServerLog("webhook", lines_per_window=3, window_s=60, clock=lambda: now[0])
    with capture_logs() as lines:
        for _ in range(7):
            server_log.exception("Error handling request from %s", "10.0.0.1",
                                 exc_info=LineTooLong(b"a" * 9000, 8190))  # fmt: skip
        assert len(lines) == 3
        now[0] += 59.9
        server_log.exception("x", "10.0.0.1", exc_info=BadHttpMessage("bad"))
        assert len(lines) == 3
        now[0] += 0.1
        server_log.exception("x", "10.0.0.1", exc_info=BadHttpMessage("Invalid header:\n\x1b[2J"))
    assert len(lines) == 4
    first, last = lines[0], lines[-1]
    assert first["log_level"] == "warning"
    assert first["event"] == "malformed HTTP request refused"
    assert (first["port"], first["remote"], first["status"]) == ("webhook", "10.0.0.1", 400)
    assert first["error"] == "LineTooLong"
    assert len(first["reason"]) < 260  # aiohttp's quotes the 9000-byte line
    assert first["unlogged_before"] == 0
    assert last["unlogged_before"] == 5
    assert last["reason"] == "Invalid header:\\n\\x1b[2J"


def test_a_bug_in_a_handler_keeps_its_error_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server_log = HttpServerLog("admin")
    with caplog.at_level(logging.ERROR, logger="aiohttp.server"), capture_logs() as lines:
        try:
            raise KeyError("a bug")
        except KeyError as exc:
            server_log.exception("Error handling request from %s", "10.0.0.1", exc_info=exc)
    assert lines == []
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is KeyError
