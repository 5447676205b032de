"""What a finished batch adds to its conversation's history: the user's messages, then the
bot's replies as they were sent (the bot sees them in `history` with its next batch), then,
when Meta's 24-hour window had closed, one `status` item for each reply lull did not send."""

from __future__ import annotations

import time
from typing import Any

import orjson

from lull.common.batch import Batch
from lull.sender.graph.client import GraphRequest
from lull.sender.media import spoken_text


def history_items(
    batch: Batch, requests: list[GraphRequest], message_ids: list[str], *, role: str = "bot"
) -> list[bytes]:
    """The batch's items, oldest first: one `user` item a message (a voice note's text is
    its transcript), one item a reply (`bot`, or `human` for what a human sent through the
    send API)."""
    items = [
        orjson.dumps({"role": "user", "mid": m.mid, "text": spoken_text(m), "time": m.event_time})
        for m in batch.messages
    ]
    # A bot item names the message it became (when known), so that a delivery failure
    # reported later (a history item with that mid) can be tied to it.
    mids: list[str | None] = [*message_ids[: len(requests)]]
    mids += [None] * (len(requests) - len(mids))
    if role == "human":
        # A human's item, as a human's echo is recorded (the contract's human_item).
        now_ms = int(time.time() * 1000)
        items += [
            orjson.dumps({"role": role, "mid": mid or "", "text": _sent_text(r.payload),
                          "time": now_ms})
            for r, mid in zip(requests, mids, strict=True)
        ]  # fmt: skip
        return items
    items += [
        orjson.dumps({"role": role, "text": _sent_text(r.payload)} | _mid(mid))
        for r, mid in zip(requests, mids, strict=True)
    ]
    return items


WINDOW_CLOSED_TITLE = "Outside the 24-hour window"
WINDOW_CLOSED_MESSAGE = (
    "Meta's 24-hour window to answer this user freely had closed, and the reply had no "
    "allowed tag (Messenger, Instagram) or was no template (WhatsApp): lull did not send it."
)


def unsent_items(requests: list[GraphRequest], now_ms: int) -> list[bytes]:
    """A `status` item for each reply not sent because the 24-hour window had closed (the
    contract's status_item with `reason` window_closed): the bot learns, with its next
    batch, that the user never saw them."""
    return [orjson.dumps(_unsent(request, now_ms)) for request in requests]


def _unsent(request: GraphRequest, now_ms: int) -> dict[str, Any]:
    return {
        "role": "status",
        "status": "failed",
        "mid": "",
        "time": now_ms,
        "code": None,
        "title": WINDOW_CLOSED_TITLE,
        "message": WINDOW_CLOSED_MESSAGE,
        "details": "",
        "reason": "window_closed",
        "text": _sent_text(request.payload),
    }


def _mid(message_id: str | None) -> dict[str, str]:
    return {} if message_id is None else {"mid": message_id}


def _sent_text(payload: dict[str, Any]) -> str:
    """The text a Graph request carried (Messenger/Instagram message, WhatsApp text), or ""."""
    message = payload.get("message")
    if isinstance(message, dict) and isinstance(message.get("text"), str):
        return str(message["text"])
    body = payload.get("text")
    if isinstance(body, dict) and isinstance(body.get("body"), str):
        return str(body["body"])
    return ""
