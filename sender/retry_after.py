"""The HTTP Retry-After header (RFC 9110): delta-seconds or an HTTP date, as a wait in ms.

Read from the Graph API's answers (with Meta's usage headers, sender/graph/errors.py) and
from the bot's (sender/bot.py).
"""

from __future__ import annotations

import math
import time
from datetime import UTC
from email.utils import parsedate_to_datetime


def retry_after_ms(value: str | None, *, now_s: float | None = None) -> int | None:
    """The wait the header asks for, in ms (0 for a date already past); None when it is
    absent or unreadable. now_s stands in for the clock when reading a date (tests)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now_s is None else now_s)
    if not math.isfinite(seconds):
        return None
    return max(0, math.ceil(seconds * 1000))
