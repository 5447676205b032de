"""Replies of many conversations of one account, sent as Graph API batch requests
(LULL_SEND_BATCH): under load each reply's HTTP exchange is the sender's largest cost.

What keeps a conversation's order and the exactly-once bookkeeping as with lone calls:
- a conversation has at most one send in flight: a batch's sends go one after another,
  each awaiting its own answer, and the next batch of a conversation waits until the one
  before is delivered (sender/deliver.py), so one batch request never holds two sends of
  one conversation, and Meta may run its calls in parallel;
- each send still takes its units of the rate limits, its pause check and its in-flight
  mark before it joins a batch, and gets its own answer: its message id, or the GraphError
  a lone call would have got;
- a batch request without an answer (timeout, connection lost) fails each of its sends as
  a lone call's timeout does: retried by the deliverer, never resent here (Meta may have
  sent it); a batch request refused with an HTTP error was processed by Meta for none of
  its calls, and each is sent alone.
The moment is the rest of the event-loop turn (no added wait): the deliveries that one
shared Redis pipeline woke together post together.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from lull.common.graph_request import GraphRequest
from lull.sender.graph.batcher import GraphBatcher
from lull.sender.graph.client import GraphClient, GraphRoutes, message_id_of

SEND_BATCH_CALLS = 16
"""Sends a batch request holds at most (Meta takes 50): several smaller batches in flight
keep the sender working while Meta answers one, where one of 50 left most deliveries
waiting on it."""


class BatchingGraphClient(GraphClient):
    """A GraphClient whose message sends go in batch requests where Meta takes them."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        routes: GraphRoutes,
        tokens: Mapping[str, str],
        timeout_s: float,
    ) -> None:
        super().__init__(session, routes, tokens, timeout_s)
        self.batcher = GraphBatcher(
            self, routes, window_ms=0, resend_unknown=False, max_calls=SEND_BATCH_CALLS
        )

    async def post(self, request: GraphRequest) -> str:
        """Send one message, in a batch when its account's sends batch; its message id, or
        GraphError as for a lone call."""
        answer = await self.batcher.call(request)
        return message_id_of(answer.status, answer.body, answer.headers)

    async def close(self) -> None:
        """Fail the sends still waiting for their batch (the sender is stopping)."""
        await self.batcher.close()
