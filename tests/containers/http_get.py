"""Small HTTP GETs to the stack's published ports (loopback only), every one bounded."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
TIMEOUT_S = 5.0
POLL_S = 0.2


class NotYet(Exception):
    """What a wait is waiting for is not there yet."""


def get_json(url: str) -> Any:
    """GET url and decode its JSON body; NotYet when the server does not answer 200 yet."""
    assert url.startswith("http://127.0.0.1:"), url
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310  (loopback, checked above)
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise NotYet(f"{url}: {exc}") from exc


def wait_for(check: Callable[[], T], what: str, timeout_s: float) -> T:
    """Call check() until it returns without NotYet; its result. Fails after timeout_s.

    The stack runs in other processes with no run-until-idle mode to call: all a test can
    do is look again, bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except NotYet as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not after {timeout_s:.0f} s ({exc})") from exc
        time.sleep(POLL_S)
