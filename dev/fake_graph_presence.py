"""The fake Graph API's check of presence calls: Messenger/Instagram sender actions and
WhatsApp read receipts with or without a typing indicator, in the shapes Meta documents
(Sender Actions; WhatsApp Typing indicators)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

SENDER_ACTIONS: Final = frozenset({"mark_seen", "typing_on", "typing_off"})
WHATSAPP_READ_KEYS: Final = frozenset(
    {"messaging_product", "status", "message_id", "typing_indicator"}
)


def is_presence(payload: Mapping[str, Any]) -> bool:
    """A sender action or a WhatsApp read receipt (with or without typing), not a message."""
    return "sender_action" in payload or ("messaging_product" in payload and "status" in payload)


def sender_action_problem(payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a Messenger/Instagram sender action, None when nothing."""
    recipient = payload.get("recipient")
    if not isinstance(recipient, dict) or not _filled(recipient.get("id")):
        return "param recipient[id] must be a non-empty string"
    if payload.get("sender_action") not in SENDER_ACTIONS:
        return f"param sender_action must be one of {sorted(SENDER_ACTIONS)}"
    # Sender Actions: "the request should only include sender_action and the recipient".
    extra = sorted(set(payload) - {"recipient", "sender_action"})
    if extra:
        return f"a sender action takes only recipient and sender_action, not {extra}"
    return None


def whatsapp_read_problem(payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a WhatsApp read receipt / typing indicator, None when nothing."""
    if payload.get("messaging_product") != "whatsapp":
        return "param messaging_product must be 'whatsapp'"
    if payload.get("status") != "read":
        return "param status must be 'read'"
    if not _filled(payload.get("message_id")):
        return "param message_id must be a non-empty string"
    typing = payload.get("typing_indicator")
    if typing is not None and typing != {"type": "text"}:
        return "param typing_indicator must be {type: text}"
    extra = sorted(set(payload) - WHATSAPP_READ_KEYS)
    if extra:
        return f"unexpected params {extra}"
    return None


def _filled(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
