"""A send API message on its way out (ingest/send_api.py, common/store/api_messages.py).

It comes as an outbound entry in its conversation's seq order, like a batch without
messages, and is delivered like one (limits, retries, dead letters, history) with its own
replies instead of the bot's: the bot is not called. A bot's message (not forced) obeys a
human's pause like a bot's answer; a human's (and a forced one) is sent during one.
"""

from __future__ import annotations

from lull.common.batch import Batch
from lull.common.replies import parse_replies
from lull.common.store.api_messages import ApiSend
from lull.sender.accounts.settings import GraphSettings
from lull.sender.graph.client import GraphRequest
from lull.sender.sends.bounds import bounded_requests
from lull.sender.settings import SenderSettings

DEAD: str = "failed"
"""The message's state when its entry is dead-lettered."""
# What a message's state is called after its entry finished with an outcome.
_STATES = {"sent": "sent", "replayed": "sent", "handoff": "sent", "dead": DEAD}


def api_requests(
    batch: Batch, send: ApiSend, settings: SenderSettings, graph: GraphSettings
) -> list[GraphRequest]:
    """The Graph requests of the message's replies (graph: its account's Graph version and
    hosts); ValueError (TooManySends among them) when they cannot be sent."""
    return bounded_requests(
        batch, parse_replies(send.replies), graph.version, routes=graph.routes,
        max_reply_parts=settings.max_reply_parts, max_sends=settings.max_sends_per_batch,
    )  # fmt: skip


def obeys_pause(batch: Batch) -> bool:
    """Whether a human's pause stops this entry before its first send (every batch does)."""
    send = ApiSend.of(batch)
    return send is None or send.obeys_pause


def api_state(outcome: str) -> str:
    """The message's state (GET /v1/messages/{id}) after its entry finished with outcome:
    sent, failed, paused, window_closed, ..."""
    return _STATES.get(outcome, outcome)


def sent_as(batch: Batch) -> str:
    """Who the entry's replies are from, in the history: bot, or human (the send API's)."""
    send = ApiSend.of(batch)
    return "bot" if send is None else send.sender
