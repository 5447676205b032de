"""A bot's replies: validating the handler's `replies` list and splitting long text.

A handler answers `{"replies": [...]}`; each item is `{"text": "..."}` or
`{"attachment": {"type": "image", "url": "https://..."}}`, optionally with
`quick_replies: [{"title": "...", "payload": "..."}]`, or (WhatsApp)
`{"template": {"name": "...", "language": "en_US", "components": [...]}}`; any of them may
carry a message `tag` for after Meta's 24-hour window (sender/reply_window.py says when
each is sent). Anything else is refused
here, once, with a reason, so the Graph client only ever sees well-formed replies.
The published form of these rules is common/contract/reply.schema.json (`lull schema
reply`); tests/contract/test_replies.py keeps the two in agreement.

Beside or without replies, the answer may ask for a human: `"handoff": {"reason": "..."}`
(sender/handoff.py: the replies are sent first, then the conversation is paused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

# Longest text one Send API message may carry, per platform, in the unit Meta counts (below).
TEXT_LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {"messenger": 2000, "instagram": 999, "whatsapp": 4096}
)


def utf8_size(text: str) -> int:
    """The text's length in UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


# Instagram counts bytes: "Message text must be UTF-8 and be a 1000 bytes or less" (Instagram
# Messaging, Send a Message, developers.facebook.com/docs/messenger-platform/instagram/
# features/send-message); the same page's limitations say "less than 1000 characters", so
# 999 bytes keeps both. Messenger and WhatsApp count characters.
TEXT_SIZES: Final[Mapping[str, Callable[[str], int]]] = MappingProxyType({"instagram": utf8_size})
# Messenger and Instagram accept at most 13 quick replies on one message.
MAX_QUICK_REPLIES: Final = 13
ATTACHMENT_TYPES: Final = frozenset({"image", "audio", "video", "file", "document"})

_REPLY_KEYS: Final = frozenset({"text", "attachment", "template", "quick_replies", "tag"})
_TEMPLATE_KEYS: Final = frozenset({"name", "language", "components"})
# Messenger Platform, Message Tags (developers.facebook.com/docs/messenger-platform/
# send-messages/message-tags): the tags that let a Page answer after the standard messaging
# window. Which platform allows which, and for how long: sender/reply_window.py.
MESSAGE_TAGS: Final = frozenset(
    {"HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"}
)
# WhatsApp template names are lowercase letters, digits and underscores, at most 512 long.
TEMPLATE_NAME_MAX_CHARS: Final = 512
_QUICK_REPLY_KEYS: Final = frozenset({"title", "payload"})


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply: text, an attachment (`{"type", "url"}`) or a WhatsApp template, with
    optional quick replies and message tag."""

    text: str | None
    attachment: dict[str, str] | None
    quick_replies: list[dict[str, Any]] | None
    tag: str | None = None
    """Messenger/Instagram message tag, used only after the 24-hour window."""
    template: Template | None = None
    """A WhatsApp message template, sendable at any time."""


@dataclass(frozen=True, slots=True)
class Template:
    """A WhatsApp message template: its approved name, language code and components
    (Meta's own shape, passed through)."""

    name: str
    language: str
    components: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Handoff:
    """The bot asks for a human to take the conversation over."""

    reason: str


@dataclass(frozen=True, slots=True)
class BotAnswer:
    """A handler's whole answer, checked: the replies to send, then maybe a handoff."""

    replies: list[Reply]
    handoff: Handoff | None = None


NO_ANSWER: Final = BotAnswer([])
# The reason travels to the pause (Redis), the CRM webhook and `lull conversation`: a note
# for a human, cut rather than refused (a long note is no reason to drop the replies).
HANDOFF_REASON_MAX_CHARS: Final = 500
_HANDOFF_KEYS: Final = frozenset({"reason"})


def parse_answer(value: object) -> BotAnswer:
    """A handler's answer: a list of replies (as handlers return them), or the answer object
    `{"replies": [...], "handoff": {...}}` (sender/bot.py hands one on when it has a
    handoff); ValueError says what is wrong."""
    if isinstance(value, dict):
        return BotAnswer(parse_replies(value.get("replies")), parse_handoff(value.get("handoff")))
    return BotAnswer(parse_replies(value))


def parse_handoff(value: object) -> Handoff | None:
    """Validate the answer's `handoff` (None or absent: no handoff)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f'handoff must be an object like {{"reason": "..."}}, not {_kind(value)}')
    unknown = sorted(str(key) for key in value if key not in _HANDOFF_KEYS)
    if unknown:
        raise ValueError(f"handoff has unknown keys {unknown}; allowed: reason")
    if "reason" not in value:
        raise ValueError('handoff needs a "reason" (a string, "" when there is none to give)')
    reason = value["reason"]
    if not isinstance(reason, str):
        raise ValueError(f"handoff.reason must be a string, not {_kind(reason)}")
    return Handoff(reason.strip()[:HANDOFF_REASON_MAX_CHARS])


def parse_replies(value: object) -> list[Reply]:
    """Validate a handler's `replies` list (None means no replies); ValueError says why not."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"replies must be a list, not {_kind(value)}")
    return [_parse_reply(index, item) for index, item in enumerate(value)]


def _parse_reply(index: int, item: object) -> Reply:
    where = f"replies[{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object, not {_kind(item)}")
    unknown = sorted(str(key) for key in item if key not in _REPLY_KEYS)
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {unknown}; allowed: text, attachment, template, "
            "quick_replies, tag"
        )
    kinds = [key for key in ("text", "attachment", "template") if key in item]
    if len(kinds) != 1:
        raise ValueError(f"{where} needs exactly one of text, attachment or template")
    quick_replies = _parse_quick_replies(where, item.get("quick_replies"))
    tag = _parse_tag(where, item.get("tag"))
    if kinds == ["template"]:
        if quick_replies is not None:
            raise ValueError(f"{where}: a template brings its own buttons; no quick_replies")
        template = _parse_template(where, item["template"])
        return Reply(text=None, attachment=None, quick_replies=None, tag=tag, template=template)
    if kinds == ["text"]:
        text = item["text"]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}.text must be a non-empty string")
        return Reply(text=text, attachment=None, quick_replies=quick_replies, tag=tag)
    return Reply(
        text=None,
        attachment=_parse_attachment(where, item["attachment"]),
        quick_replies=quick_replies,
        tag=tag,
    )


def _parse_tag(where: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in MESSAGE_TAGS:
        raise ValueError(f"{where}.tag must be one of {sorted(MESSAGE_TAGS)}, not {value!r}")
    return value


def _parse_template(where: str, value: object) -> Template:
    where = f"{where}.template"
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object with name and language, not {_kind(value)}")
    unknown = sorted(str(key) for key in value if key not in _TEMPLATE_KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; allowed: name, language, components")
    name, language = value.get("name"), value.get("language")
    if not isinstance(name, str) or not name.strip() or len(name) > TEMPLATE_NAME_MAX_CHARS:
        raise ValueError(
            f"{where}.name must be a non-empty string of at most {TEMPLATE_NAME_MAX_CHARS} "
            "characters (the approved template's name)"
        )
    if not isinstance(language, str) or not language.strip():
        raise ValueError(
            f'{where}.language must be the template\'s language code as a string, like "en_US"'
        )
    components = value.get("components")
    if components is None:
        return Template(name, language)
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise ValueError(f"{where}.components must be a list of objects (Meta's components)")
    return Template(name, language, components or None)


def _parse_attachment(where: str, value: object) -> dict[str, str]:
    where = f"{where}.attachment"
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object with type and url, not {_kind(value)}")
    if set(value) != {"type", "url"}:
        raise ValueError(f"{where} must have exactly the keys type and url")
    kind, url = value["type"], value["url"]
    if not isinstance(kind, str) or kind not in ATTACHMENT_TYPES:
        raise ValueError(f"{where}.type must be one of {sorted(ATTACHMENT_TYPES)}, not {kind!r}")
    if not isinstance(url, str) or not _is_http_url(url):
        raise ValueError(f"{where}.url must be an http(s) URL with a host")
    return {"type": kind, "url": url}


def _parse_quick_replies(where: str, value: object) -> list[dict[str, Any]] | None:
    where = f"{where}.quick_replies"
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, not {_kind(value)}")
    if len(value) > MAX_QUICK_REPLIES:
        raise ValueError(f"{where} has {len(value)} items; at most {MAX_QUICK_REPLIES} allowed")
    parsed: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(item, dict) or set(item) != _QUICK_REPLY_KEYS:
            raise ValueError(f"{here} must be an object with exactly the keys title and payload")
        title, payload = item["title"], item["payload"]
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"{here}.title must be a non-empty string")
        if not isinstance(payload, str) or not payload:
            raise ValueError(f"{here}.payload must be a non-empty string")
        parsed.append({"title": title, "payload": payload})
    # An empty list asks for nothing; treating it as absent keeps payloads free of empty arrays.
    return parsed or None


def split_text(text: str, limit: int, size: Callable[[str], int] = len) -> list[str]:
    """Split text at whitespace into non-empty chunks, in order, each of at most limit as
    `size` measures it (characters by default)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    chunks: list[str] = []
    # Text that fits keeps its whitespace; text that must be split loses it at every cut.
    rest = text if size(text) <= limit else text.lstrip()
    while size(rest) > limit:
        fit = _fitting(rest, limit, size)
        cut = _last_break(rest[: fit + 1])
        head = rest[:cut].rstrip() if cut > 0 else ""
        if not head:
            # One word longer than the limit: cutting it is better than refusing the reply.
            head, cut = rest[:fit], fit
        chunks.append(head)
        rest = rest[cut:].lstrip()
    if rest.strip():
        chunks.append(rest)
    return chunks


def _fitting(text: str, limit: int, size: Callable[[str], int]) -> int:
    """How many leading characters of text fit in limit; at least 1, so a split advances."""
    if size is len:
        return limit
    # Both measures add up character by character (UTF-8 encodes each code point alone).
    used = 0
    for index, char in enumerate(text):
        used += size(char)
        if used > limit:
            return max(index, 1)
    return len(text)


def _last_break(window: str) -> int:
    """Index of the best whitespace to cut the window at, or -1 when it has none."""
    # A paragraph or line break reads better than a space, unless it would leave a short chunk.
    for separator in ("\n\n", "\n"):
        index = window.rfind(separator)
        if index >= len(window) // 2:
            return index
    for index in range(len(window) - 1, -1, -1):
        if window[index].isspace():
            return index
    return -1


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
