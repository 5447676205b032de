"""Which media an attachment names, read from the batch as the processor wrote it.

WhatsApp (messages webhook reference): `{type, <type>: {id, mime_type, sha256, caption?,
filename?, voice?}}`; the normalised attachment keeps id and mime_type, the rest is read
from the message's `raw` item. Messenger and Instagram: `attachments[].payload.url`, a
URL on Meta's CDN, kept as the attachment's `url`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lull.common.batch import Batch, Message
from lull.sender.media.signing import Target

AUDIO = "audio"


@dataclass(frozen=True, slots=True)
class Media:
    """One attachment's media, as far as the webhook told."""

    target: Target
    mime_type: str | None
    sha256: str | None
    voice: bool


def media_of(batch: Batch, message: Message, attachment: dict[str, Any]) -> Media | None:
    """The media an attachment names, None when it names none (a sticker id, a location)."""
    if batch.platform == "whatsapp":
        media_id = attachment.get("id")
        if not isinstance(media_id, str) or not media_id:
            return None
        body = _whatsapp_body(message.raw)
        mime = attachment.get("mime_type") or body.get("mime_type")
        sha256 = body.get("sha256")
        return Media(
            Target(batch.platform, batch.account_id, media_id=media_id),
            mime if isinstance(mime, str) else None,
            sha256 if isinstance(sha256, str) else None,
            body.get("voice") is True,
        )
    url = attachment.get("url")
    if not isinstance(url, str) or not url:
        return None
    return Media(Target(batch.platform, batch.account_id, url=url), None, None, False)


def is_audio(attachment: dict[str, Any]) -> bool:
    """A voice note or audio file: what is transcribed."""
    return attachment.get("type") == AUDIO


def _whatsapp_body(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    kind = raw.get("type")
    body = raw.get(kind) if isinstance(kind, str) else None
    return body if isinstance(body, dict) else {}
