"""Presence calls of one account in one moment, sent as one Graph API batch request.

Under load a Messenger batch costs the sender two presence calls (mark_seen, typing_on)
beside its reply, each a full HTTP exchange; the calls of many conversations of one Page
that come within BATCH_WINDOW_MS go out as one batch request of up to 50 calls
(sender/graph_batch.py says what Meta documents), and each caller gets its own call's answer,
as a single call would have answered it (a per-call error raises that call's GraphError).

Only presence is batched: it is best-effort, so a batch lost with a crashed sender loses
only read receipts and typing. Replies keep their one call each and their exactly-once
bookkeeping (sender/deliver.py). Rate accounting stays per call: Presence takes each call's
slot of the account's limit before handing it here.

Where a batch request fails as a whole (refused, no answer, not Meta's shape), none of its
calls is known to have been made: each goes again alone (a repeated typing or read shows the
same thing twice, nothing more). A call the batch did not complete (null in Meta's answer)
goes again alone. After a refusal that retrying cannot help (permanent: the endpoint or the
token does not take batches), the account's calls go one by one for REFUSED_S.
WhatsApp and Instagram with Instagram Login never batch (not documented by Meta).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final, Protocol

import structlog

from lull.common.graph_request import GraphRequest
from lull.sender.graph import GraphClient, GraphError, GraphRoutes, classify
from lull.sender.graph_batch import MAX_CALLS, CallAnswer, batchable

log = structlog.get_logger("lull.sender")

BATCH_WINDOW_MS: Final = 5.0
"""How long the first call of a batch waits for others (LULL_PRESENCE_BATCH_MS's default):
a few ms of the bot's seconds."""
REFUSED_S: Final = 60.0


class ActionPoster(Protocol):
    """What presence sends its calls through (GraphClient, or BatchedActions over one)."""

    async def post_action(self, request: GraphRequest) -> None:
        """One presence call; GraphError when it failed."""


@dataclass(slots=True)
class _Call:
    request: GraphRequest
    answer: asyncio.Future[None]


class BatchedActions:
    """post_action that coalesces an account's Messenger/Instagram calls into batches."""

    def __init__(
        self,
        graph: GraphClient,
        routes: GraphRoutes,
        *,
        window_ms: float = BATCH_WINDOW_MS,
        max_calls: int = MAX_CALLS,
    ) -> None:
        self._graph = graph
        self._routes = routes
        self.window_ms = window_ms
        """0: every call alone."""
        self._max_calls = max_calls
        self._queues: dict[tuple[str, str], list[_Call]] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._refused_until: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Batch requests sent (tests, the bench)."""

    async def post_action(self, request: GraphRequest) -> None:
        """Send one presence call, in a batch when its account's calls batch."""
        key = (request.account_id, request.platform)
        base_url = self._routes.route(request.platform, request.account_id).base_url
        refused = self._refused_until.get(key, 0.0) > time.monotonic()
        if refused or self.window_ms <= 0 or not batchable(request.platform, base_url):
            await self._graph.post_action(request)
            return
        loop = asyncio.get_running_loop()
        call = _Call(request, loop.create_future())
        queue = self._queues.setdefault(key, [])
        queue.append(call)
        if len(queue) >= self._max_calls:
            self._flush(key)
        elif len(queue) == 1:
            self._timers[key] = loop.call_later(self.window_ms / 1000, self._flush, key)
        await call.answer

    async def close(self) -> None:
        """Cancel the batches in flight and fail the calls still waiting (presence is
        closing: none of it is worth waiting for)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for calls in self._queues.values():
            for call in calls:
                _fail(call, GraphError("temporary", "the sender is stopping"))
        self._queues.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _flush(self, key: tuple[str, str]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        calls = self._queues.pop(key, [])
        if not calls:
            return
        task = asyncio.create_task(self._send(key, calls))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, key: tuple[str, str], calls: list[_Call]) -> None:
        if len(calls) == 1:
            await self._alone(calls)
            return
        account_id, platform = key
        try:
            answers = await self._graph.post_batch(account_id, platform, [c.request for c in calls])
        except GraphError as exc:
            if exc.kind == "permanent":
                self._refused_until[key] = time.monotonic() + REFUSED_S
            log.info("presence batch failed, calls go alone", account_id=account_id,
                     calls=len(calls), error=str(exc))  # fmt: skip
            await self._alone(calls)
            return
        self.batches += 1
        again = [call for call, answer in zip(calls, answers, strict=True) if answer is None]
        for call, answer in zip(calls, answers, strict=True):
            if answer is not None:
                _settle(call, answer)
        await self._alone(again)

    async def _alone(self, calls: list[_Call]) -> None:
        await asyncio.gather(*(self._one(call) for call in calls))

    async def _one(self, call: _Call) -> None:
        try:
            await self._graph.post_action(call.request)
        except GraphError as exc:
            _fail(call, exc)
        else:
            if not call.answer.done():
                call.answer.set_result(None)


def _settle(call: _Call, answer: CallAnswer) -> None:
    """A batched call's answer, as post_action would have taken it."""
    if 200 <= answer.status < 300:
        if not call.answer.done():
            call.answer.set_result(None)
        return
    _fail(call, classify(answer.status, answer.body, answer.headers))


def _fail(call: _Call, exc: GraphError) -> None:
    if not call.answer.done():
        call.answer.set_exception(exc)
