"""Meta's 24-hour window: which of a batch's replies may still be sent, and how.

Meta lets a business answer freely for 24 hours after the user's last message (Messenger's
and Instagram's standard messaging window, WhatsApp's customer service window). After it:
- Messenger and Instagram take a message only with `messaging_type: MESSAGE_TAG` and a tag
  the platform allows: `HUMAN_AGENT` for 7 days after the user's last message (both), and on
  Messenger only `ACCOUNT_UPDATE`, `CONFIRMED_EVENT_UPDATE`, `POST_PURCHASE_UPDATE` (no limit
  of their own; non-promotional updates). Sources: Messenger Platform "Message Tags"
  (developers.facebook.com/docs/messenger-platform/send-messages/message-tags) and "Messenger
  Platform and IG Messaging API policy" (developers.facebook.com/documentation/
  business-messaging/messenger-platform/policy/).
- WhatsApp takes only a template message (`type: template`).
Anything else Meta refuses (Messenger/Instagram code 10, subcode 2018278, "This message is
sent outside of allowed window"; WhatsApp 131047, "Re-engagement message"), so lull does not
send it: the batch finishes `window_closed` (docs/sending.md, "The 24-hour window").

Within the window a reply goes out as the bot wrote it: a tag is not sent (`RESPONSE`), since
a tag is for after the window and HUMAN_AGENT needs its own permission.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from lull.common.graph_request import GraphRequest
from lull.common.lifetime import REPLY_WINDOW_MS

__all__ = [
    "REPLY_WINDOW_MS",
    "WINDOW_CLOSED",
    "ready_to_send",
    "sendable",
    "window_ends_at_ms",
    "window_open",
]

HUMAN_AGENT_WINDOW_MS: Final = 7 * 24 * 3600 * 1000
# Per platform, the tags that let a message out after the window, and until how long after
# the user's last message (None: no limit of its own).
TAG_LIMITS_MS: Final[Mapping[str, Mapping[str, int | None]]] = MappingProxyType(
    {
        "messenger": MappingProxyType(
            {
                "HUMAN_AGENT": HUMAN_AGENT_WINDOW_MS,
                "ACCOUNT_UPDATE": None,
                "CONFIRMED_EVENT_UPDATE": None,
                "POST_PURCHASE_UPDATE": None,
            }
        ),
        "instagram": MappingProxyType({"HUMAN_AGENT": HUMAN_AGENT_WINDOW_MS}),
    }
)
WINDOW_CLOSED: Final = "window_closed"
"""The outcome of a batch whose replies could not be sent in the window."""


def window_ends_at_ms(user_last_ms: int) -> int:
    """When free-form replies stop being accepted (ms), for the user's last message then."""
    return user_last_ms + REPLY_WINDOW_MS


def window_open(user_last_ms: int, now_ms: int) -> bool:
    """Whether a free-form message (or a sender action) may be sent now."""
    return now_ms < window_ends_at_ms(user_last_ms)


def sendable(request: GraphRequest, user_last_ms: int, now_ms: int) -> GraphRequest | None:
    """The request as it may be sent now, or None when Meta would refuse it for the window.

    user_last_ms 0 (lull never saw the user write: a state from before the window was kept)
    counts as open: Meta's own answer then decides (sender/graph/errors.py)."""
    if user_last_ms <= 0 or window_open(user_last_ms, now_ms):
        return request
    payload = request.payload
    if _platform(request) == "whatsapp":
        return request if payload.get("type") == "template" else None
    limit = TAG_LIMITS_MS.get(_platform(request), {})
    if request.tag not in limit:
        return None
    until = limit[request.tag]
    if until is not None and now_ms >= user_last_ms + until:
        return None
    tagged = {**payload, "messaging_type": "MESSAGE_TAG", "tag": request.tag}
    return GraphRequest(request.account_id, request.path, tagged, request.platform, request.tag)


def _platform(request: GraphRequest) -> str:
    """The request's platform; a send state saved before requests knew it: by its shape."""
    if request.platform:
        return request.platform
    return "whatsapp" if "messaging_product" in request.payload else "messenger"


def ready_to_send(
    requests: list[GraphRequest], user_last_ms: int, now_ms: int
) -> list[GraphRequest] | None:
    """The requests as they may be sent now, or None when any message among them may not
    (a batch's replies go out whole or not at all). Calls that are not messages (thread
    control, sender/handoff.py) are no reply to the user: the window does not apply."""
    ready: list[GraphRequest] = []
    for request in requests:
        if not request.path.endswith("/messages"):
            ready.append(request)
            continue
        allowed = sendable(request, user_last_ms, now_ms)
        if allowed is None:
            return None
        ready.append(allowed)
    return ready
