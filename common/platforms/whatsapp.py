"""WhatsApp Cloud API (object "whatsapp_business_account"): changes[].value.messages[] to Events."""

from __future__ import annotations

from typing import Any

from lull.common.delivery import DeliveryFailure
from lull.common.events import (
    EDIT,
    FLOW_REPLY,
    POSTBACK,
    QUICK_REPLY,
    SMB_ECHO,
    UNSEND,
    Event,
    Parsed,
    Turn,
)
from lull.common.platforms._shared import (
    MALFORMED,
    change_name,
    dict_at,
    id_at,
    items_at,
    list_at,
    seconds_as_ms_at,
    str_at,
    text_at,
)

PLATFORM = "whatsapp"

_MEDIA = frozenset(("image", "audio", "video", "document", "sticker"))
_MEDIA_FIELDS = ("id", "mime_type", "caption", "filename")
# Taps share one kind vocabulary across the platforms (README, "Message kinds"), so one
# LULL_FLUSH_ON covers them all: a reply button is Messenger's quick reply, a list row is a
# menu pick like Messenger's postback; a finished Flow is a form, not a tap.
_INTERACTIVE_KINDS = {"button_reply": QUICK_REPLY, "list_reply": POSTBACK, "nfm_reply": FLOW_REPLY}


def parse(doc: dict[str, Any]) -> Parsed:
    """Normalise a WhatsApp Cloud API webhook body, in body order."""
    parsed = Parsed()
    entries = list_at(doc, "entry")
    if entries is None:
        parsed.ignored.append((PLATFORM, MALFORMED))
        return parsed
    for entry in entries:
        changes = list_at(entry, "changes") if isinstance(entry, dict) else None
        if changes is None:
            parsed.ignored.append((PLATFORM, MALFORMED))
            continue
        for change in changes:
            _change(change, parsed)
    return parsed


def _change(change: Any, parsed: Parsed) -> None:
    ignored = parsed.ignored
    if isinstance(change, dict) and change.get("field") == "smb_message_echoes":
        _echoes(change, parsed)
        return
    if not isinstance(change, dict) or change.get("field") != "messages":
        ignored.append((PLATFORM, change_name(change)))
        return
    value = dict_at(change, "value")
    if value is None:
        ignored.append((PLATFORM, MALFORMED))
        return
    if "messages" not in value and "statuses" not in value and "errors" not in value:
        ignored.append((PLATFORM, "unknown"))
        return
    account_id = id_at(dict_at(value, "metadata"), "phone_number_id")
    for message in items_at(value, "messages", PLATFORM, ignored):
        result = _message(message, account_id)
        if isinstance(result, Event):
            parsed.events.append(result)
        else:
            ignored.append((PLATFORM, result))
    # Statuses report on our own outgoing messages: a failed one is a reply that did not
    # arrive (matched to its conversation later), the others are only counted. Errors report
    # on the webhook itself.
    for status in items_at(value, "statuses", PLATFORM, ignored):
        failure = _failure(status, account_id) if _is_failed(status) else "status"
        if isinstance(failure, DeliveryFailure):
            parsed.failures.append(failure)
        else:
            ignored.append((PLATFORM, failure))
    errors = items_at(value, "errors", PLATFORM, ignored)
    ignored.extend([(PLATFORM, "error")] * len(errors))


def _message(message: Any, account_id: str | None) -> Event | str:
    """The event one messages[] item holds, or "malformed"."""
    if not isinstance(message, dict) or account_id is None:
        return MALFORMED
    # A user who adopted a WhatsApp username may come without a phone number: `from` is then
    # absent (or "" in Meta's first drafts) and only `from_user_id`, their business-scoped
    # user id (BSUID), names them. The phone number stays the key whenever it is there, so
    # conversations of users without a username keep the key they always had; see README,
    # "WhatsApp users without a phone number".
    user_id = id_at(message, "from") or id_at(message, "from_user_id")
    mid = id_at(message, "id")
    time_ms = seconds_as_ms_at(message, "timestamp")
    kind = id_at(message, "type")
    if user_id is None or mid is None or time_ms is None or kind is None:
        return MALFORMED
    # Each type keeps its content under a key named after it: {"type": "image", "image": {…}}.
    body = dict_at(message, kind)
    text = ""
    attachments: list[dict[str, Any]] = []
    target_mid = None
    if kind == "text":
        text = text_at(body, "body")
    elif kind in _MEDIA:
        attachments = [_media(kind, body)]
        text = text_at(body, "caption")
        kind = "attachment"
    elif kind == "location":
        text = ", ".join(part for part in (text_at(body, "name"), text_at(body, "address")) if part)
    elif kind == "interactive":
        reply_type = id_at(body, "type")
        reply = dict_at(body, reply_type) if reply_type is not None else None
        # nfm_reply (a finished Flow) has no title; its body is what the user's bubble shows.
        text = text_at(reply, "title") or text_at(reply, "body")
        kind = _INTERACTIVE_KINDS.get(reply_type or "", kind)
    elif kind in ("button", "order"):
        text = text_at(body, "text")
        # A template's quick-reply button: the user picked a suggested answer.
        kind = QUICK_REPLY if kind == "button" else kind
    elif kind in ("edit", "revoke"):
        target_mid = id_at(body, "original_message_id")
        if target_mid is None:
            return MALFORMED
        if kind == "edit":
            text = _edited_text(dict_at(body, "message"))
            kind = EDIT
        else:
            kind = UNSEND
    return Event(
        platform=PLATFORM,
        account_id=account_id,
        user_id=user_id,
        mid=mid,
        event_time_ms=time_ms,
        kind=kind,
        text=text,
        attachments=attachments,
        raw=message,
        target_mid=target_mid,
    )


def _echoes(change: dict[str, Any], parsed: Parsed) -> None:
    """A coexistence number's messages sent from the WhatsApp Business app or a linked device
    (Meta's smb_message_echoes reference): value.message_echoes[] of {from: the business
    number, to: the user, id, timestamp, type, <type>: {...}}. Cloud API sends are never
    echoed there, so each is a human's turn."""
    value = dict_at(change, "value")
    account_id = id_at(dict_at(value, "metadata"), "phone_number_id")
    if value is None or account_id is None:
        parsed.ignored.append((PLATFORM, MALFORMED))
        return
    for echo in items_at(value, "message_echoes", PLATFORM, parsed.ignored):
        turn = _echo(echo, account_id)
        if turn is None:
            parsed.ignored.append((PLATFORM, MALFORMED))
        else:
            parsed.turns.append(turn)


def _echo(echo: Any, account_id: str) -> Turn | None:
    if not isinstance(echo, dict):
        return None
    # `to` is the number as the business app addressed it ("+16505551234" in Meta's
    # example) while an inbound message's `from` (the conversation's key) is the bare wa_id:
    # digits only. A user without a phone number is named by their BSUID, as in messages.
    to = id_at(echo, "to")
    user_id = "".join(c for c in to if c.isdigit()) if to else id_at(echo, "to_user_id")
    mid = id_at(echo, "id")
    time_ms = seconds_as_ms_at(echo, "timestamp")
    if not user_id or mid is None or time_ms is None:
        return None
    kind = id_at(echo, "type") or ""
    body = dict_at(echo, kind) if kind else None
    text = text_at(body, "body") if kind == "text" else text_at(body, "caption")
    return Turn(
        platform=PLATFORM,
        account_id=account_id,
        user_id=user_id,
        kind=SMB_ECHO,
        time_ms=time_ms,
        mid=mid,
        text=text,
    )


def _media(kind: str, media: dict[str, Any] | None) -> dict[str, Any]:
    attachment: dict[str, Any] = {"type": kind}
    for field in _MEDIA_FIELDS:
        value = str_at(media, field)
        if value is not None:
            attachment[field] = value
    return attachment


def _edited_text(message: dict[str, Any] | None) -> str:
    """The new text of an edit: a text body, or the caption of edited media."""
    kind = id_at(message, "type")
    if message is None or kind is None:
        return ""
    content = dict_at(message, kind)
    return text_at(content, "body") if kind == "text" else text_at(content, "caption")


def _is_failed(status: Any) -> bool:
    return isinstance(status, dict) and status.get("status") == "failed"


def _failure(status: dict[str, Any], account_id: str | None) -> DeliveryFailure | str:
    """The failure a `failed` statuses[] item reports, or "malformed".

    Shape from Meta's status messages webhook reference: `id` (the wamid), `timestamp`,
    `recipient_id` (phone number; absent when the message went to a BSUID) or
    `recipient_user_id` (BSUID), and `errors[]` of {code, title, message,
    error_data.details, href}. A failed status carries no `contacts`."""
    message_id = id_at(status, "id")
    time_ms = seconds_as_ms_at(status, "timestamp")
    if account_id is None or message_id is None or time_ms is None:
        return MALFORMED
    errors = list_at(status, "errors") or [None]
    error = errors[0] if isinstance(errors[0], dict) else None
    code = error.get("code") if error is not None else None
    return DeliveryFailure(
        platform=PLATFORM,
        account_id=account_id,
        message_id=message_id,
        time_ms=time_ms,
        recipient=id_at(status, "recipient_id") or id_at(status, "recipient_user_id"),
        code=code if type(code) is int else None,  # bool is an int subclass: not a code
        title=text_at(error, "title"),
        message=text_at(error, "message"),
        details=text_at(dict_at(error, "error_data"), "details"),
        raw=status,
    )
