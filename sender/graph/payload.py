"""From one reply to the Send API requests that deliver it, per platform.

Messenger and Instagram share one shape (`recipient`, `messaging_type`, `message`);
WhatsApp's Cloud API has its own (`messaging_product`, `to` or `recipient`, `type` and
an object named after the type). Text longer than the platform allows becomes several messages.

WhatsApp choices:
- `context` (quote the user's last message) goes on the first request of each reply
  only: one quote per answer, not one per chunk.
- Quick replies become an interactive reply-button message when there are at most 3,
  each title fits 20 characters and each payload 256 (the button id); the buttons ride
  on the last text chunk, whose body must then fit 1024 characters. Otherwise, and
  always for attachments (buttons need a text body), the titles are sent as a plain
  list, one per line, after the text: the user still sees the choices, and the bot
  receives the chosen title back as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlsplit

from lull.common.batch import Batch
from lull.common.graph_request import GraphRequest
from lull.common.replies import TEXT_LIMITS, TEXT_SIZES, Reply, Template, split_text
from lull.sender.graph.routes import GraphRoutes
from lull.sender.graph.whatsapp_ids import recipient_fields

PLATFORMS: Final = frozenset(TEXT_LIMITS)
WHATSAPP_MAX_BUTTONS: Final = 3
WHATSAPP_BUTTON_TITLE_LIMIT: Final = 20
WHATSAPP_BUTTON_ID_LIMIT: Final = 256
WHATSAPP_BUTTON_BODY_LIMIT: Final = 1024
# The handler's generic "file" and WhatsApp's "document" name the same thing.
_MESSENGER_ATTACHMENT: Final = {"document": "file"}
_WHATSAPP_ATTACHMENT: Final = {"file": "document"}


DEFAULT_ROUTES: Final = GraphRoutes({})


def build_requests(
    batch: Batch, reply: Reply, version: str, routes: GraphRoutes = DEFAULT_ROUTES
) -> list[GraphRequest]:
    """The requests, in send order, that deliver one reply to the batch's user."""
    platform = batch.platform
    if platform not in PLATFORMS:
        raise ValueError(f"batch platform must be one of {sorted(PLATFORMS)}, not {platform!r}")
    if reply.template is not None and platform != "whatsapp":
        raise ValueError(
            f"a template reply is WhatsApp's; on {platform} answer text or an attachment "
            "(with a tag after the 24-hour window)"
        )
    if (
        reply.attachment is None
        and reply.template is None
        and not (reply.text and reply.text.strip())
    ):
        raise ValueError("reply has neither text nor an attachment")
    account_id = _required_str(batch.account_id, "account_id")
    user_id = _required_str(batch.user_id, "user_id")
    path = messages_path(platform, account_id, version, routes)
    if platform == "whatsapp":
        payloads = _whatsapp(user_id, _last_mid(batch), reply)
    else:
        payloads = _messenger(user_id, reply, platform)
    # The tag rides beside the payload: sender/reply_window.py puts it in only after the window.
    tag = "" if platform == "whatsapp" or reply.tag is None else reply.tag
    return [GraphRequest(account_id, path, payload, platform, tag) for payload in payloads]


def messages_path(platform: str, account_id: str, version: str, routes: GraphRoutes) -> str:
    """The path of the account's Send API node: `/{version}/{node}/messages`."""
    node = routes.route(platform, account_id).node
    return f"/{version.strip('/')}/{quote(node, safe='')}/messages"


def _messenger(user_id: str, reply: Reply, platform: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]]
    if reply.attachment is not None:
        kind = reply.attachment["type"]
        payload = {"url": reply.attachment["url"], "is_reusable": True}
        messages = [
            {"attachment": {"type": _MESSENGER_ATTACHMENT.get(kind, kind), "payload": payload}}
        ]
    else:
        limit, size = TEXT_LIMITS[platform], TEXT_SIZES.get(platform, len)
        messages = [{"text": chunk} for chunk in split_text(reply.text or "", limit, size)]
    if reply.quick_replies and messages:
        # Quick replies belong to the message the user answers: the last one.
        messages[-1]["quick_replies"] = [
            {"content_type": "text", "title": item["title"], "payload": item["payload"]}
            for item in reply.quick_replies
        ]
    return [
        {"recipient": {"id": user_id}, "messaging_type": "RESPONSE", "message": message}
        for message in messages
    ]


def _whatsapp(user_id: str, reply_to: str | None, reply: Reply) -> list[dict[str, Any]]:
    limit = TEXT_LIMITS["whatsapp"]
    bodies: list[dict[str, Any]] = []
    options = reply.quick_replies or []
    buttons = _buttons(options) if reply.attachment is None else None
    if reply.template is not None:
        bodies.append(_whatsapp_template(reply.template))
        # A template is a message of its own: it quotes nothing.
        reply_to = None
    elif reply.attachment is not None:
        bodies.append(_whatsapp_media(reply.attachment))
        if options:
            bodies.extend(
                _whatsapp_text(chunk) for chunk in split_text(_option_list(options), limit)
            )
    elif buttons is not None:
        chunks = _split_with_tail(reply.text or "", limit, WHATSAPP_BUTTON_BODY_LIMIT)
        bodies.extend(_whatsapp_text(chunk) for chunk in chunks[:-1])
        bodies.append(
            {
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": chunks[-1]},
                    "action": {"buttons": buttons},
                },
            }
        )
    else:
        text = reply.text or ""
        if options:
            text = f"{text}\n\n{_option_list(options)}"
        bodies.extend(_whatsapp_text(chunk) for chunk in split_text(text, limit))
    # A user known only by their business-scoped user id is addressed with `recipient`.
    address = recipient_fields(user_id)
    payloads = [
        {"messaging_product": "whatsapp", "recipient_type": "individual", **address, **body}
        for body in bodies
    ]
    if payloads and reply_to is not None:
        payloads[0]["context"] = {"message_id": reply_to}
    return payloads


def _whatsapp_template(template: Template) -> dict[str, Any]:
    """WhatsApp Cloud API template message: `name`, `language.code`, optional `components`."""
    content: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.components:
        content["components"] = template.components
    return {"type": "template", "template": content}


def _whatsapp_text(chunk: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": chunk, "preview_url": False}}


def _whatsapp_media(attachment: Mapping[str, str]) -> dict[str, Any]:
    kind = _WHATSAPP_ATTACHMENT.get(attachment["type"], attachment["type"])
    media: dict[str, str] = {"link": attachment["url"]}
    if kind == "document":
        # Without a filename WhatsApp shows the document as "Untitled".
        filename = urlsplit(attachment["url"]).path.rsplit("/", 1)[-1]
        if filename:
            media["filename"] = filename
    return {"type": kind, kind: media}


def _buttons(options: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """Reply buttons for the options, or None when WhatsApp's button limits rule them out."""
    if not options or len(options) > WHATSAPP_MAX_BUTTONS:
        return None
    titles = [str(item["title"]) for item in options]
    ids = [str(item["payload"]) for item in options]
    fits = all(len(title) <= WHATSAPP_BUTTON_TITLE_LIMIT for title in titles) and all(
        len(button_id) <= WHATSAPP_BUTTON_ID_LIMIT for button_id in ids
    )
    # WhatsApp refuses two buttons with the same title or id.
    if not fits or len(set(titles)) < len(titles) or len(set(ids)) < len(ids):
        return None
    return [
        {"type": "reply", "reply": {"id": button_id, "title": title}}
        for button_id, title in zip(ids, titles, strict=True)
    ]


def _option_list(options: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"• {item['title']}" for item in options)


def _split_with_tail(text: str, limit: int, tail_limit: int) -> list[str]:
    """split_text, then cut the last chunk again so it fits tail_limit."""
    chunks = split_text(text, limit)
    # Without trailing whitespace, split_text's final piece is a suffix of its input,
    # so the head is exactly what precedes it.
    last = chunks.pop().rstrip()
    pieces = split_text(last, tail_limit)
    tail = pieces[-1]
    head = last[: len(last) - len(tail)].rstrip()
    if head:
        chunks.append(head)
    chunks.append(tail)
    return chunks


def _last_mid(batch: Batch) -> str | None:
    return batch.messages[-1].mid or None if batch.messages else None


def _required_str(value: str, key: str) -> str:
    if not value:
        raise ValueError(f"batch {key} must be a non-empty string, not {value!r}")
    return value
