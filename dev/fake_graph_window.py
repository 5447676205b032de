"""The fake Graph API's 24-hour window: Meta's answer to a message sent too late.

The fake knows when a user last wrote only when told (`FakeGraph.wrote`, or `POST
/_user_wrote` with `{"user": id, "at_ms": ms}`); a user it was not told about is always in
the window. After 24 hours, as Meta does:
- Messenger/Instagram take only `messaging_type: MESSAGE_TAG` with a tag the platform allows
  (Instagram: HUMAN_AGENT only), HUMAN_AGENT only for 7 days; else code 10, subcode 2018278,
  "(#10) This message is sent outside of allowed window." (Send API error codes);
- WhatsApp takes only `type: template`; else 131047, "Re-engagement message".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

DAY_MS: Final = 24 * 3600 * 1000
HUMAN_AGENT_MS: Final = 7 * DAY_MS
MESSENGER_TAGS: Final = frozenset(
    {"HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"}
)
INSTAGRAM_TAGS: Final = frozenset({"HUMAN_AGENT"})


@dataclass(frozen=True, slots=True)
class WindowError:
    """Meta's error for a message outside the window."""

    code: int
    subcode: int | None
    message: str
    details: str | None = None


MESSENGER_WINDOW: Final = WindowError(
    10, 2018278, "(#10) This message is sent outside of allowed window."
)
WHATSAPP_WINDOW: Final = WindowError(
    131047,
    None,
    "Re-engagement message",
    "Message failed to send because more than 24 hours have passed since the customer last "
    "replied to this number.",
)


def recipient(payload: Mapping[str, Any]) -> str | None:
    """The user a message goes to: Messenger/Instagram recipient.id, WhatsApp to or recipient."""
    if "messaging_product" in payload:
        value = payload.get("to") or payload.get("recipient")
        return value if isinstance(value, str) else None
    to = payload.get("recipient")
    user = to.get("id") if isinstance(to, dict) else None
    return user if isinstance(user, str) else None


def tag_problem(payload: Mapping[str, Any], *, instagram: bool) -> str | None:
    """A tag in the wrong place (any time): MESSAGE_TAG needs a known tag, a tag needs it."""
    tag, tagged = payload.get("tag"), payload.get("messaging_type") == "MESSAGE_TAG"
    allowed = INSTAGRAM_TAGS if instagram else MESSENGER_TAGS
    if tagged and tag not in allowed:
        return f"param tag must be one of {sorted(allowed)} with messaging_type MESSAGE_TAG"
    if tag is not None and not tagged:
        return "param tag needs messaging_type MESSAGE_TAG"
    return None


def window_error(
    payload: Mapping[str, Any], last_ms: int | None, now_ms: int, *, instagram: bool
) -> WindowError | None:
    """Meta's error when this message may not be sent now, None when it may."""
    if last_ms is None or now_ms - last_ms < DAY_MS:
        return None
    if "messaging_product" in payload:
        return None if payload.get("type") == "template" else WHATSAPP_WINDOW
    tag = payload.get("tag")
    if payload.get("messaging_type") != "MESSAGE_TAG" or tag is None:
        return MESSENGER_WINDOW
    if tag == "HUMAN_AGENT" and now_ms - last_ms >= HUMAN_AGENT_MS:
        return MESSENGER_WINDOW
    if instagram and tag not in INSTAGRAM_TAGS:
        return MESSENGER_WINDOW
    return None


def template_problem(content: Mapping[str, Any]) -> str | None:
    """What is wrong with a WhatsApp `template` object (name, language.code, components)."""
    name, language = content.get("name"), content.get("language")
    if not isinstance(name, str) or not name:
        return "param template[name] must be a non-empty string"
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        return "param template[language][code] must be a string"
    components = content.get("components")
    if components is not None and not (
        isinstance(components, list) and all(isinstance(c, dict) for c in components)
    ):
        return "param template[components] must be a list of objects"
    return None
