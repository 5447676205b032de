"""Messenger (object "page"): entry[].messaging[] items to Events; Instagram reuses it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from lull.common.events import (
    ECHO,
    EDIT,
    POSTBACK,
    QUICK_REPLY,
    STANDBY,
    THREAD_PASSED,
    THREAD_TAKEN,
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
    ms_at,
    name,
    str_at,
    text_at,
)

PLATFORM = "messenger"

SpecialKind = Callable[[dict[str, Any], list[dict[str, Any]]], str | None]
"""A platform's own message kinds (Instagram's), or None to apply Messenger's rules."""

# Checked in this order: an item carries one action, but a postback may also hold a referral.
_EVENT_KEYS = ("message", "message_edit", "postback", "reaction", "referral")
_RECEIPT_KEYS = ("read", "delivery")
# Handover Protocol (Meta's messaging_handovers reference): pass_thread_control reaches the
# app the thread is passed to, take_thread_control the app it was taken from. Both name the
# new and previous owner. request_thread_control (to the Primary Receiver: another app asks)
# and app_roles change no owner: they are counted as ignored under their own names.
_HANDOVER_KEYS = (THREAD_PASSED, THREAD_TAKEN)
_HEAD_KEYS = frozenset(("sender", "recipient", "timestamp"))


class _Head(NamedTuple):
    """Who wrote to whom, and when: present on every messaging[] item."""

    account_id: str
    user_id: str
    time_ms: int


def parse(doc: dict[str, Any]) -> Parsed:
    """Normalise a Messenger webhook body (object "page")."""
    return parse_entries(doc, PLATFORM, None)


def parse_entries(doc: dict[str, Any], platform: str, special_kind: SpecialKind | None) -> Parsed:
    """Normalise the entry[] of a Messenger-shaped body, in body order."""
    parsed = Parsed()
    ignored = parsed.ignored
    entries = list_at(doc, "entry")
    if entries is None:
        ignored.append((platform, MALFORMED))
        return parsed
    for entry in entries:
        if not isinstance(entry, dict):
            ignored.append((platform, MALFORMED))
            continue
        if "messaging" not in entry and "standby" not in entry and "changes" not in entry:
            ignored.append((platform, "unknown"))
            continue
        _entry(entry, platform, special_kind, parsed)
    return parsed


def _entry(
    entry: dict[str, Any], platform: str, special_kind: SpecialKind | None, parsed: Parsed
) -> None:
    """One entry's messaging[], standby[] and changes[] items, appended to parsed."""
    events, ignored, turns = parsed.events, parsed.ignored, parsed.turns
    for item in items_at(entry, "messaging", platform, ignored):
        result = _item(item, platform, special_kind)
        if isinstance(result, Event):
            events.append(result)
        elif isinstance(result, Turn):
            turns.append(result)
        else:
            ignored.append((platform, result))
    # Standby items reach the apps that do not hold the thread: another app (the Page Inbox,
    # a CRM) has it, so lull's bot must not answer. The user's messages are still windowed
    # (their batches are stamped paused and land in the history); an echo there is the
    # other app's, a human turn.
    for item in items_at(entry, "standby", platform, ignored):
        result = _item(item, platform, special_kind)
        if isinstance(result, str):
            ignored.append((platform, STANDBY))
            continue
        turns.append(_standby(result))
        if isinstance(result, Event):
            events.append(result)
        else:
            turns.append(result)
    for change in items_at(entry, "changes", platform, ignored):
        ignored.append((platform, change_name(change)))


def _item(item: Any, platform: str, special_kind: SpecialKind | None) -> Event | Turn | str:
    """The event (or business-side turn) one messaging[] item holds, or the kind it is
    ignored under."""
    if not isinstance(item, dict):
        return MALFORMED
    for key in _EVENT_KEYS:
        if key in item:
            break
    else:
        return _not_an_event(item, platform)
    body = dict_at(item, key)
    if body is None:
        return MALFORMED
    # Truthy rather than `is True`: taking our own reply for user input would loop the bot.
    if key == "message" and body.get("is_echo"):
        return _echo(item, platform, body)
    head = _head(item)
    if head is None:
        return MALFORMED
    if key == "message":
        return _message(platform, head, item, body, special_kind)
    if key == "message_edit":
        return _edit(platform, head, item, body)
    if key == "postback":
        mid = id_at(body, "mid") or f"postback:{head.user_id}:{head.time_ms}"
        return _event(platform, head, item, POSTBACK, mid, text=text_at(body, "title"))
    if key == "reaction":
        target = id_at(body, "mid")
        if target is None:
            return MALFORMED
        action = id_at(body, "action") or "react"
        mid = f"reaction:{target}:{action}:{head.time_ms}"
        return _event(platform, head, item, "reaction", mid)
    return _event(platform, head, item, "referral", f"referral:{head.user_id}:{head.time_ms}")


def _not_an_event(item: dict[str, Any], platform: str) -> Turn | str:
    """A handover, or the kind an item without a user action is ignored under."""
    for handover in _HANDOVER_KEYS:
        if handover in item:
            return _handover(item, platform, handover)
    return _ignored_key(item)


def _echo(item: dict[str, Any], platform: str, message: dict[str, Any]) -> Turn | str:
    """A message the Page sent (Meta's message_echoes reference): sender is the Page,
    recipient the user, `app_id` the app that sent it. Whether lull did is decided later."""
    account_id = id_at(dict_at(item, "sender"), "id")
    user_id = id_at(dict_at(item, "recipient"), "id")
    time_ms = ms_at(item, "timestamp")
    mid = id_at(message, "mid")
    if account_id is None or user_id is None or time_ms is None or mid is None:
        return ECHO
    return Turn(
        platform=platform,
        account_id=account_id,
        user_id=user_id,
        kind=ECHO,
        time_ms=time_ms,
        mid=mid,
        text=text_at(message, "text"),
        app_id=_app_id(message.get("app_id")),
    )


def _handover(item: dict[str, Any], platform: str, key: str) -> Turn | str:
    """A change of the thread's owner: sender is the user, recipient the Page."""
    head = _head(item)
    body = dict_at(item, key)
    if head is None or body is None:
        return MALFORMED
    return Turn(
        platform=platform,
        account_id=head.account_id,
        user_id=head.user_id,
        kind=key,
        time_ms=head.time_ms,
        app_id=_app_id(body.get("new_owner_app_id")),
        previous_app_id=_app_id(body.get("previous_owner_app_id")),
    )


def _standby(result: Event | Turn) -> Turn:
    """The hold a standby item stands for, in its conversation."""
    return Turn(
        platform=result.platform,
        account_id=result.account_id,
        user_id=result.user_id,
        kind=STANDBY,
        time_ms=result.event_time_ms if isinstance(result, Event) else result.time_ms,
    )


def _app_id(value: Any) -> str:
    """An app id as Meta writes it: a number in echoes, a string in handovers, or null."""
    if type(value) is int and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 32:
        return value
    return ""


def _head(item: dict[str, Any]) -> _Head | None:
    account_id = id_at(dict_at(item, "recipient"), "id")
    user_id = id_at(dict_at(item, "sender"), "id")
    time_ms = ms_at(item, "timestamp")
    if account_id is None or user_id is None or time_ms is None:
        return None
    return _Head(account_id, user_id, time_ms)


def _event(
    platform: str,
    head: _Head,
    item: dict[str, Any],
    kind: str,
    mid: str,
    *,
    text: str = "",
    attachments: list[dict[str, Any]] | None = None,
    target_mid: str | None = None,
) -> Event:
    return Event(
        platform=platform,
        account_id=head.account_id,
        user_id=head.user_id,
        mid=mid,
        event_time_ms=head.time_ms,
        kind=kind,
        text=text,
        attachments=attachments if attachments is not None else [],
        raw=item,
        target_mid=target_mid,
    )


def _message(
    platform: str,
    head: _Head,
    item: dict[str, Any],
    message: dict[str, Any],
    special_kind: SpecialKind | None,
) -> Event | str:
    mid = id_at(message, "mid")
    if mid is None:
        return MALFORMED
    attachments = _attachments(message)
    kind = special_kind(message, attachments) if special_kind is not None else None
    if kind is None:
        kind = _message_kind(message, attachments)
    if kind == UNSEND:
        # The unsend is an action of its own: its dedupe key must differ from the message's.
        return _event(platform, head, item, UNSEND, f"{mid}#deleted", target_mid=mid)
    return _event(
        platform, head, item, kind, mid, text=text_at(message, "text"), attachments=attachments
    )


def _message_kind(message: dict[str, Any], attachments: list[dict[str, Any]]) -> str:
    if isinstance(message.get("quick_reply"), dict):
        return QUICK_REPLY
    if attachments:
        return "attachment"
    if isinstance(message.get("text"), str):
        return "text"
    # Neither text nor attachments: content this API version cannot show (e.g. a poll).
    return "unsupported"


def _attachments(message: dict[str, Any]) -> list[dict[str, Any]]:
    items = list_at(message, "attachments")
    if not items:
        return []
    out: list[dict[str, Any]] = []
    for attachment in items:
        if not isinstance(attachment, dict):
            continue
        payload = dict_at(attachment, "payload")
        normalised: dict[str, Any] = {"type": id_at(attachment, "type") or "unknown"}
        # Older "fallback" attachments carry url and title beside the payload, not in it.
        url = str_at(payload, "url") or str_at(attachment, "url")
        if url:
            normalised["url"] = url
        title = str_at(payload, "title") or str_at(attachment, "title")
        if title:
            normalised["title"] = title
        sticker_id = payload.get("sticker_id") if payload is not None else None
        if isinstance(sticker_id, str | int) and not isinstance(sticker_id, bool):
            normalised["sticker_id"] = sticker_id
        out.append(normalised)
    return out


def _edit(platform: str, head: _Head, item: dict[str, Any], edit: dict[str, Any]) -> Event | str:
    target = id_at(edit, "mid")
    num_edit = edit.get("num_edit")
    # The docs' table says int, their example a string: take either, as long as it is there.
    if target is None or not (type(num_edit) is int or (isinstance(num_edit, str) and num_edit)):
        return MALFORMED
    mid = f"{target}#edit{num_edit}"
    return _event(platform, head, item, EDIT, mid, text=text_at(edit, "text"), target_mid=target)


def _ignored_key(item: dict[str, Any]) -> str:
    """Name a non-event item by its action key (read, optin, …) so the metric tells them apart."""
    for receipt in _RECEIPT_KEYS:
        if receipt in item:
            return receipt
    key = next((k for k in item if k not in _HEAD_KEYS), None)
    return "unknown" if key is None else name(key)
