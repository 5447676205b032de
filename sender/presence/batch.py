"""Presence calls of one account in one moment, sent as one Graph API batch request.

Under load a Messenger batch costs the sender two presence calls (mark_seen, typing_on)
beside its reply, each a full HTTP exchange; the calls of many conversations of one Page
that come within LULL_PRESENCE_BATCH_MS go out as one batch request of up to 50 calls
(sender/graph/batcher.py; sender/graph/batch.py says what Meta documents), and each caller
gets its own call's answer, as a single call would have answered it (a per-call error raises
that call's GraphError).

Presence is best-effort, so a batch lost with a crashed sender loses only read receipts and
typing, and a batch whose fate is unknown is sent again call by call (a read or a typing
shown twice shows the same thing). Rate accounting stays per call: Presence takes each
call's slot of the account's limit before handing it here. WhatsApp and Instagram with
Instagram Login never batch (not documented by Meta).
"""

from __future__ import annotations

from typing import Final, Protocol

from lull.common.graph_request import GraphRequest
from lull.sender.graph.batcher import GraphBatcher
from lull.sender.graph.client import GraphClient, GraphRoutes, action_done

BATCH_WINDOW_MS: Final = 5
"""How long the first call of a batch waits for others (LULL_PRESENCE_BATCH_MS's default):
a few ms of the bot's seconds."""


class ActionPoster(Protocol):
    """What presence sends its calls through (GraphClient, or BatchedActions over one)."""

    async def post_action(self, request: GraphRequest) -> None:
        """One presence call; GraphError when it failed."""


class BatchedActions:
    """post_action that coalesces an account's Messenger/Instagram calls into batches."""

    def __init__(
        self, graph: GraphClient, routes: GraphRoutes, *, window_ms: float = BATCH_WINDOW_MS
    ) -> None:
        self.batcher = GraphBatcher(
            graph, routes, window_ms=window_ms if window_ms > 0 else None, resend_unknown=True
        )

    async def post_action(self, request: GraphRequest) -> None:
        """Send one presence call, in a batch when its account's calls batch."""
        answer = await self.batcher.call(request)
        action_done(answer.status, answer.body, answer.headers)

    async def close(self) -> None:
        """Cancel the batches in flight (presence is closing: none of it is worth waiting
        for)."""
        await self.batcher.close()
