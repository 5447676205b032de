"""Texts that come from outside (Meta's error details, a bot's error, an operator's `by`):
bounded before they are stored, and made harmless before they are printed.

A terminal obeys the control characters in what it prints (ESC starts a sequence that can
move the cursor, rewrite the screen or the window title), so an operator's screen shows
them escaped (`\\x1b`), never raw.
"""

from __future__ import annotations

import re
from typing import Final

MAX_DETAIL_CHARS: Final = 1000
"""An error detail, a title or a reason: a sentence or a paragraph, never a document."""

# C0 controls but tab and newline, DEL, the C1 controls, and the line and paragraph
# separators and bidirectional overrides that reorder what a terminal shows.
_REORDERING: Final = "\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE: Final = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_REORDERING}]")
_UNPRINTABLE_OR_BREAK: Final = re.compile(f"[\x00-\x1f\x7f-\x9f{_REORDERING}]")


def cut(text: str, max_chars: int = MAX_DETAIL_CHARS) -> str:
    """text, or its first max_chars characters and a mark that says how much was left out."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… ({len(text) - max_chars} more characters)"


def printable(text: str, *, one_line: bool = True) -> str:
    """text with every control character escaped (`\\x1b`, `\\n` when one_line)."""
    pattern = _UNPRINTABLE_OR_BREAK if one_line else _UNPRINTABLE
    return pattern.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    return match.group(0).encode("unicode_escape").decode("ascii")
