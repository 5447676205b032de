"""The `media` object of every attachment, made when the batch is handed to the bot.

Signing and expiry are about the moment the bot gets the batch, so nothing of this is in
the batch stored in Redis: `url` (a signed lull link, LULL_MEDIA_SECRET), `expires_at` (ms),
`mime_type`, `sha256` and `voice` when Meta's webhook gives them, and with
LULL_MEDIA_INLINE_MAX_BYTES the bytes themselves as `data` (base64) with `size`; `error`
says why a link or inline data is missing.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from lull.common.batch import Batch
from lull.sender.media.attachments import Media, media_of
from lull.sender.media.fetch import MediaFetcher, Refused
from lull.sender.media.settings import MediaSettings
from lull.sender.media.signing import Signer


class MediaLinks:
    """Builds the `media` objects of a batch for the bot."""

    def __init__(self, settings: MediaSettings, signer: Signer | None, fetcher: MediaFetcher):
        self._settings = settings
        self._signer = signer
        self._fetcher = fetcher

    async def attach(self, batch: Batch, document: dict[str, Any]) -> dict[str, Any]:
        """document (the batch as the bot gets it) with a `media` object on each attachment
        that names media; the batch's own attachments are not changed."""
        messages = []
        pending = []
        for message, doc in zip(batch.messages, document["messages"], strict=True):
            attachments = []
            for attachment in message.attachments:
                media = media_of(batch, message, attachment)
                if media is None:
                    attachments.append(attachment)
                    continue
                obj = self._object(media)
                attachments.append({**attachment, "media": obj})
                if self._settings.inline_max_bytes and "error" not in obj:
                    pending.append(self._inline(media, obj))
            messages.append({**doc, "attachments": attachments})
        await asyncio.gather(*pending)
        return {**document, "messages": messages}

    def _object(self, media: Media) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        target = media.target
        if target.url is not None and not self._fetcher.allowlist.allows(target.url):
            # A URL in a webhook that points off Meta's hosts is never fetched, nor linked.
            self._fetcher.metrics.refusals.labels("host").inc()
            return {"error": "host not on LULL_MEDIA_HOSTS"}
        if self._signer is not None:
            expires_at_s = int(time.time()) + self._settings.url_ttl_s
            obj["url"] = self._signer.link(self._settings.public_url, target, expires_at_s)
            obj["expires_at"] = expires_at_s * 1000
        if media.mime_type:
            obj["mime_type"] = media.mime_type
        if media.sha256:
            obj["sha256"] = media.sha256
        if media.voice:
            obj["voice"] = True
        return obj

    async def _inline(self, media: Media, obj: dict[str, Any]) -> None:
        """Fill obj with the bytes when they fit; else say why (the link stays)."""
        timeout_s = self._settings.timeout_ms / 1000
        try:
            # Bounded as a whole, the wait for a download slot included: the bot is waiting.
            async with asyncio.timeout(timeout_s):
                data, mime = await self._fetcher.read(media.target, self._settings.inline_max_bytes)
        except TimeoutError:
            obj["error"] = f"not fetched: took over {timeout_s:g} s"
            return
        except Refused as exc:
            obj["error"] = (
                "larger than LULL_MEDIA_INLINE_MAX_BYTES"
                if exc.reason == "too_large"
                else f"not fetched: {exc}"
            )
            return
        obj["mime_type"] = obj.get("mime_type") or mime
        obj["size"] = len(data)
        obj["data"] = base64.b64encode(data).decode()
