"""How many Send API messages one answer may become, checked before anything is sent.

A reply's text is cut at the platform's limit (common/replies.py TEXT_LIMITS: Messenger 2000
characters, Instagram 1000 bytes, WhatsApp 4096 characters), so without a bound a 1 MB text
is 501 Messenger messages to one user. LULL_MAX_REPLY_PARTS bounds the messages one reply
becomes (a text longer than that many times the platform's limit is refused before it is
split); LULL_MAX_SENDS_PER_BATCH bounds all replies of a batch together. An answer over
either is refused whole: the batch is dead-lettered with the reason and nothing is sent,
never half an answer.
"""

from __future__ import annotations

from typing import Final

from lull.common.batch import Batch
from lull.common.graph_request import GraphRequest
from lull.common.replies import TEXT_LIMITS, TEXT_SIZES, Reply
from lull.sender.graph.payload import DEFAULT_ROUTES, build_requests
from lull.sender.graph.routes import GraphRoutes

DEFAULT_MAX_REPLY_PARTS: Final = 5
DEFAULT_MAX_SENDS_PER_BATCH: Final = 20


class TooManySends(ValueError):
    """The answer would be more Send API messages than the settings allow."""


def bounded_requests(
    batch: Batch,
    replies: list[Reply],
    version: str,
    *,
    max_reply_parts: int,
    max_sends: int,
    routes: GraphRoutes = DEFAULT_ROUTES,
) -> list[GraphRequest]:
    """The requests that deliver every reply, in order; TooManySends (naming the reply, the
    count and the setting) when a reply or the whole answer is over its bound."""
    requests: list[GraphRequest] = []
    for index, reply in enumerate(replies):
        _check_text_size(batch.platform, index, reply, max_reply_parts)
        built = build_requests(batch, reply, version, routes)
        if len(built) > max_reply_parts:
            raise TooManySends(
                f"replies[{index}] would be {len(built)} messages on {batch.platform}, "
                f"at most {max_reply_parts} (LULL_MAX_REPLY_PARTS)"
            )
        requests += built
        if len(requests) > max_sends:
            raise TooManySends(
                f"the {len(replies)} replies would be more than {max_sends} messages "
                f"(LULL_MAX_SENDS_PER_BATCH); over it at replies[{index}]"
            )
    return requests


def _check_text_size(platform: str, index: int, reply: Reply, max_parts: int) -> None:
    """Refuse a text that cannot fit max_parts messages before splitting it: splitting a
    huge text costs time in proportion to its size times its parts."""
    limit = TEXT_LIMITS.get(platform)
    if reply.text is None or limit is None:
        return
    measured = TEXT_SIZES.get(platform, len)(reply.text)
    if measured > limit * max_parts:
        unit = "bytes" if platform in TEXT_SIZES else "characters"
        raise TooManySends(
            f"replies[{index}].text is {measured} {unit}: more than {max_parts} messages of "
            f"{limit} on {platform} (LULL_MAX_REPLY_PARTS)"
        )
