"""The calls of one account in one moment, sent as Graph API batch requests of up to 50.

Each caller hands one request and gets its own call's answer (CallAnswer), as one call
alone would have answered it; what the answer means is the caller's (presence_batch.py,
batched_sends.py). Only `/messages` calls of Messenger and Instagram on graph.facebook.com
batch (sender/graph/batch.py says what Meta documents); others go alone at once.

A moment: `window_ms` after an account's first waiting call, or (window_ms=0) the rest of
this event-loop turn, which gathers the calls of every delivery a shared Redis pipeline
woke together without delaying a lone call. 50 waiting calls go at once.

When the batch request fails as a whole:
- answered with an HTTP error: Meta processed none of its calls; each goes again alone
  (after a refusal that retrying cannot help, the account's calls go alone for REFUSED_S);
- no answer (timeout, connection lost, not Meta's shape): unknown whether its calls were
  made. With `resend_unknown` (presence: showing a read or typing twice is harmless) each goes
  again alone; else each caller gets the failure a lone call would have got (a reply is
  then retried by the deliverer under its own rules, as after a lone call's timeout).
A call Meta did not complete inside a batch (null) is handled alike.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

import structlog

from lull.common.graph_request import GraphRequest
from lull.sender.graph.batch import MAX_CALLS, CallAnswer, batchable
from lull.sender.graph.client import GraphClient, GraphError, GraphRoutes

log = structlog.get_logger("lull.sender")

REFUSED_S: Final = 60.0
_NOT_COMPLETED: Final = "Meta did not complete this call of a batch request"


@dataclass(slots=True)
class _Call:
    request: GraphRequest
    answer: asyncio.Future[CallAnswer]


class GraphBatcher:
    """Coalesces an account's calls of a moment into batch requests."""

    def __init__(
        self,
        graph: GraphClient,
        routes: GraphRoutes,
        *,
        window_ms: float | None,
        resend_unknown: bool,
        max_calls: int = MAX_CALLS,
    ) -> None:
        self.graph = graph
        self._routes = routes
        self.window_ms = window_ms
        """None: every call alone; 0: the calls of one event-loop turn; else ms."""
        self._resend_unknown = resend_unknown
        self._max_calls = max_calls
        self._queues: dict[tuple[str, str], list[_Call]] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle | asyncio.Handle] = {}
        self._refused_until: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Batch requests Meta answered (tests, the bench)."""

    async def call(self, request: GraphRequest) -> CallAnswer:
        """One call's answer; GraphError when no answer came (a lone call's failures)."""
        key = (request.account_id, request.platform)
        if not self._batches(key, request):
            return await self._exchange(request)
        loop = asyncio.get_running_loop()
        call = _Call(request, loop.create_future())
        queue = self._queues.setdefault(key, [])
        queue.append(call)
        if len(queue) >= self._max_calls:
            self._flush(key)
        elif len(queue) == 1:
            assert self.window_ms is not None
            self._timers[key] = (
                loop.call_soon(self._flush, key)
                if self.window_ms <= 0
                else loop.call_later(self.window_ms / 1000, self._flush, key)
            )
        return await call.answer

    async def close(self) -> None:
        """Cancel the batches in flight and fail the calls still waiting."""
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

    def _batches(self, key: tuple[str, str], request: GraphRequest) -> bool:
        if self.window_ms is None or not request.path.endswith("/messages"):
            return False
        if self._refused_until.get(key, 0.0) > time.monotonic():
            return False
        base_url = self._routes.route(request.platform, request.account_id).base_url
        return batchable(request.platform, base_url)

    def _flush(self, key: tuple[str, str]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        calls = self._queues.pop(key, [])
        if not calls:
            return
        task = asyncio.create_task(self._send_or_fail(key, calls))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_or_fail(self, key: tuple[str, str], calls: list[_Call]) -> None:
        try:
            await self._send(key, calls)
        except asyncio.CancelledError:
            # close(): no caller may wait for ever on a batch that will not answer.
            for call in calls:
                _fail(call, GraphError("temporary", "the sender is stopping"))
            raise

    async def _send(self, key: tuple[str, str], calls: list[_Call]) -> None:
        if len(calls) == 1:
            await self._alone(calls)
            return
        account_id, platform = key
        try:
            answers = await self.graph.post_batch(account_id, platform, [c.request for c in calls])
        except GraphError as exc:
            answered = exc.status is not None
            if answered and exc.kind == "permanent":
                self._refused_until[key] = time.monotonic() + REFUSED_S
            log.info("graph batch request failed", account_id=account_id, calls=len(calls),
                     answered=answered, error=str(exc))  # fmt: skip
            if answered or self._resend_unknown:
                await self._alone(calls)
            else:
                for call in calls:
                    _fail(call, exc)
            return
        self.batches += 1
        again = []
        for call, answer in zip(calls, answers, strict=True):
            if answer is not None:
                if not call.answer.done():
                    call.answer.set_result(answer)
            elif self._resend_unknown:
                again.append(call)
            else:
                _fail(call, GraphError("temporary", _NOT_COMPLETED))
        await self._alone(again)

    async def _alone(self, calls: list[_Call]) -> None:
        await asyncio.gather(*(self._one(call) for call in calls))

    async def _one(self, call: _Call) -> None:
        try:
            answer = await self._exchange(call.request)
        except GraphError as exc:
            _fail(call, exc)
        else:
            if not call.answer.done():
                call.answer.set_result(answer)

    async def _exchange(self, request: GraphRequest) -> CallAnswer:
        status, body, headers = await self.graph.exchange(request)
        return CallAnswer(status, body, headers)


def _fail(call: _Call, exc: GraphError) -> None:
    if not call.answer.done():
        call.answer.set_exception(exc)
