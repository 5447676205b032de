"""Signed media links: what a link names, its expiry, and the HMAC that binds them.

A link is `{public_url}/media/wa/{account}/{media-id}` (a WhatsApp media id, resolved with
the account's token) or `{public_url}/media/cdn/{platform}/{account}/{url}` (a Messenger
or Instagram CDN URL, base64url), with `?e={expires_at_s}&s={signature}`; the signature is
HMAC-SHA256 with LULL_MEDIA_SECRET over the path and the expiry, so neither can be changed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

PREFIX: Final = "/media"
WHATSAPP: Final = "wa"
CDN: Final = "cdn"


@dataclass(frozen=True, slots=True)
class Target:
    """What a link names: a WhatsApp media id, or a CDN URL, of one account."""

    platform: str
    account_id: str
    media_id: str | None = None
    url: str | None = None

    def path(self) -> str:
        """The link's path (what is signed)."""
        account = quote(self.account_id, safe="")
        if self.media_id is not None:
            return f"{PREFIX}/{WHATSAPP}/{account}/{quote(self.media_id, safe='')}"
        assert self.url is not None
        encoded = base64.urlsafe_b64encode(self.url.encode()).decode().rstrip("=")
        return f"{PREFIX}/{CDN}/{quote(self.platform, safe='')}/{account}/{encoded}"


def target_of(kind: str, parts: list[str]) -> Target | None:
    """The target a link's path segments after /media/{kind}/ name, None if malformed."""
    if kind == WHATSAPP and len(parts) == 2 and all(parts):
        return Target("whatsapp", parts[0], media_id=parts[1])
    if kind == CDN and len(parts) == 3 and all(parts):
        try:
            padded = parts[2] + "=" * (-len(parts[2]) % 4)
            url = base64.urlsafe_b64decode(padded.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return Target(parts[0], parts[1], url=url)
    return None


class Signer:
    """Signs and checks links with one secret."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def __repr__(self) -> str:
        return "Signer(<secret masked>)"

    def signature(self, path: str, expires_at_s: int) -> str:
        """The signature of path until expires_at_s (base64url, unpadded)."""
        digest = hmac.new(self._key, f"{path}\n{expires_at_s}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def link(self, public_url: str, target: Target, expires_at_s: int) -> str:
        """The URL the bot GETs."""
        path = target.path()
        return f"{public_url}{path}?e={expires_at_s}&s={self.signature(path, expires_at_s)}"

    def valid(self, path: str, expires_at_s: int, signature: str) -> bool:
        """Constant-time check of a link's signature (its expiry is checked apart)."""
        return hmac.compare_digest(self.signature(path, expires_at_s), signature)
