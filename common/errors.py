"""Typed outcomes a handler reports for one entry when it did not finish it.

A handler returns these (it does not raise them) so that one place, the consumer loop,
decides what happens next: retry the entry later on this replica, or dead-letter it.
"""

from __future__ import annotations


class RetryLater(Exception):
    """Not now: handle this entry again after delay_ms, without counting a delivery."""

    def __init__(self, delay_ms: int, reason: str = "retry later") -> None:
        super().__init__(f"{reason} (in {delay_ms} ms)")
        # A negative delay would be due in the past; it means "as soon as possible".
        self.delay_ms = max(0, int(delay_ms))
        self.reason = reason


class Permanent(Exception):
    """Never: this entry cannot be handled; dead-letter it with the reason and ack it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
