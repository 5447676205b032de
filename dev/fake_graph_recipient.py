"""The fake Graph API's view of a WhatsApp request's addressee: the checks and the answer's
`contacts` entry, after Meta's "Business-scoped user IDs" page
(see sender/graph/whatsapp_ids.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lull.sender.graph.whatsapp_ids import is_bsuid, is_phone_number


def whatsapp_recipient_problem(to: object, recipient: object) -> str | None:
    """`to` takes a phone number, `recipient` a business-scoped user id; one is needed."""
    if to is None and recipient is None:
        return "param to (a phone number) or recipient (a business-scoped user id) is required"
    if to is not None and not (isinstance(to, str) and is_phone_number(to)):
        return "param to must be a phone number; send to a business-scoped user id in recipient"
    if recipient is not None and not (isinstance(recipient, str) and is_bsuid(recipient)):
        return "param recipient must be a business-scoped user id, e.g. US.13491208655302741918"
    return None


def whatsapp_contact(payload: Mapping[str, Any]) -> dict[str, str]:
    """The answer's contacts[0], as Meta's BSUID page shows it: `input` is what addressed the
    message (`to` wins when both are given), `wa_id` comes only for a phone number, `user_id`
    only when a BSUID was given."""
    to, recipient = payload.get("to"), payload.get("recipient")
    if to is None:
        return {"input": str(recipient), "user_id": str(recipient)}
    contact = {"input": str(to), "wa_id": str(to).lstrip("+")}
    if recipient is not None:
        contact["user_id"] = str(recipient)
    return contact
