"""`sha256=<hex HMAC-SHA256 of the raw body>`: Meta's X-Hub-Signature-256 (with the app
secret), which ingest checks, and lull's X-Lull-Signature-256 (with LULL_HANDLER_SECRET),
which the sender puts on every bot call."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The header value for body: what Meta sends (lull simulate, tests) and what lull
    sends the bot."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check(header: str | None, body: bytes, secrets: tuple[str, ...]) -> str | None:
    """None when the header matches any secret, else the reason it does not."""
    if header is None:
        return "missing"
    # isascii: aiohttp hands non-ASCII header bytes over as surrogates, which encode() rejects.
    if not header.isascii() or not header.startswith(PREFIX) or len(header) != len(PREFIX) + 64:
        return "malformed"
    given = header[len(PREFIX) :].lower().encode()
    # Every secret is tried, so the time taken does not tell which one (or none) matched.
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        matched |= hmac.compare_digest(expected, given)
    return None if matched else "mismatch"
