"""LULL_ACCESS_TOKENS: each account's Graph access token, "*" the default.

Read by the sender (its sends) and by the send API (which accounts it may accept messages
for), so it lives here rather than in either service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import orjson

TOKENS_FORMAT: Final = "a JSON object mapping account id to access token, or @path/to/file.json"
# The token of an account that has none of its own.
DEFAULT_ACCOUNT: Final = "*"


def load_tokens(value: str) -> dict[str, str]:
    """Parse LULL_ACCESS_TOKENS: inline JSON or @file; ValueError never shows a token."""
    text = value.strip()
    if not text:
        raise ValueError(f"empty; expected {TOKENS_FORMAT}")
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = (
                (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else "not UTF-8"
            )
            raise ValueError(f"cannot read token file {str(path)!r}: {reason}") from None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        # Position only: the message must not quote the text, which holds tokens.
        raise ValueError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}); expected {TOKENS_FORMAT}"
        ) from None
    if not isinstance(parsed, dict):
        raise ValueError(f"a JSON {type(parsed).__name__}; expected {TOKENS_FORMAT}")
    tokens: dict[str, str] = {}
    for account_id, token in parsed.items():
        if not account_id.strip():
            raise ValueError("an account id is empty")
        if not isinstance(token, str) or not token.strip() or any(c.isspace() for c in token):
            raise ValueError(
                f"the token for account {account_id!r} must be a non-empty string without spaces"
            )
        tokens[account_id] = token
    return tokens
