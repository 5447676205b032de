"""Instagram (object "instagram"): Messenger's messaging[] shape plus Instagram's own kinds."""

from __future__ import annotations

from typing import Any

from lull.common.events import UNSEND, Parsed
from lull.common.platforms._shared import dict_at
from lull.common.platforms.messenger import parse_entries

PLATFORM = "instagram"


def parse(doc: dict[str, Any]) -> Parsed:
    """Normalise an Instagram messaging webhook body (object "instagram")."""
    return parse_entries(doc, PLATFORM, _special_kind)


def _special_kind(message: dict[str, Any], attachments: list[dict[str, Any]]) -> str | None:
    """Kinds only Instagram sends; None lets Messenger's rules decide."""
    if message.get("is_deleted") is True:
        return UNSEND
    if message.get("is_unsupported") is True:
        return "unsupported"
    reply_to = dict_at(message, "reply_to")
    if reply_to is not None and isinstance(reply_to.get("story"), dict):
        return "story_reply"
    if any(attachment["type"] == "story_mention" for attachment in attachments):
        return "story_mention"
    return None
