"""One batch's way out: order, per-user limit, handler, supersede, sends, finish.

Each step that can fail returns an outcome to the consumer loop instead of raising:
RetryLater (this replica tries again after the delay, other conversations go on) or
Permanent (dead letter). Nothing here sleeps on a limit.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from common.consumer import Entry, Outcome
from common.errors import Permanent, RetryLater
from common.keys import Keys
from sender.graph import GraphClient, GraphError, GraphRequest, build_requests
from sender.handler import Handler, HandlerPermanent, HandlerRetry
from sender.metrics import SenderMetrics
from sender.ratelimit import RateLimiter
from sender.replies import Reply, parse_replies
from sender.send_state import SendState, SendStore
from sender.settings import SenderSettings

log = structlog.get_logger("lull.sender")

# Batch n waits for n-1 of the same conversation; it is usually seconds behind at most.
ORDER_RETRY_MS = 50
REQUIRED = ("batch_id", "seq", "platform", "account_id", "user_id", "conversation", "messages")


def backoff_ms(attempts: int, base_ms: int, max_ms: int) -> int:
    """Exponential backoff with jitter, so retrying replicas do not move in step."""
    ceiling = min(max_ms, base_ms * 2 ** max(0, attempts - 1))
    return int(ceiling / 2 + random.random() * ceiling / 2)  # noqa: S311  (jitter, not crypto)


def decode_batch(raw: bytes | None) -> dict[str, Any]:
    """The batch JSON of an outbound entry; ValueError when it is not one."""
    if raw is None:
        raise ValueError("entry has no batch field")
    batch = orjson.loads(raw)
    if not isinstance(batch, dict) or any(name not in batch for name in REQUIRED):
        raise ValueError("batch JSON lacks " + ", ".join(n for n in REQUIRED if n not in batch))
    if not isinstance(batch["seq"], int) or batch["seq"] < 1:
        raise ValueError(f"bad seq {batch['seq']!r}")
    return batch


@dataclass
class Deliverer:
    """Delivers batches; one per sender replica, shared by every consumer task."""

    settings: SenderSettings
    keys: Keys
    store: SendStore
    limiter: RateLimiter
    handler: Handler
    graph: GraphClient
    metrics: SenderMetrics

    async def deliver(self, entry: Entry) -> Outcome:
        """Take one batch as far as it can go now; the outcome tells the loop what's next."""
        try:
            batch = decode_batch(entry.fields.get(b"batch"))
        except ValueError as exc:
            return self._dead(f"malformed batch: {exc}")
        shard = self.keys.shard_of_outbound(entry.stream)
        settings = self.settings
        loaded = await self.store.load(shard, batch, settings.history_messages > 0)
        seq = batch["seq"]
        if seq <= loaded.delivered_seq:
            # Delivered before a crash or a claim: ack and skip, never answer twice.
            self.metrics.deliveries.labels("duplicate").inc()
            return None
        if seq > loaded.delivered_seq + 1:
            self.metrics.deliveries.labels("waiting").inc()
            return RetryLater(ORDER_RETRY_MS, f"waiting for seq {loaded.delivered_seq + 1}")
        state = loaded.state
        if state.requests is None:
            outcome = await self._call_handler(shard, entry, batch, state, loaded.history)
            if outcome is not None or state.requests is None:
                return outcome
        return await self._send(shard, entry, batch, state)

    async def _call_handler(
        self,
        shard: int,
        entry: Entry,
        batch: dict[str, Any],
        state: SendState,
        history: list[Any],
    ) -> Outcome:
        """Fill state.requests from the bot's replies, or say why not (outcome)."""
        rate = self.settings.rate_per_user
        if rate is not None and not state.admitted:
            wait_ms = await self.limiter.acquire(self.keys.user_rate(batch["conversation"]), rate)
            if wait_ms > 0:
                self.metrics.rate_waits.labels("user").inc()
                return RetryLater(wait_ms, "per-user rate limit")
            state.admitted = True
        started = time.perf_counter()
        try:
            raw_replies = await self.handler({**batch, "history": history})
            replies = [] if self.handler.forward_only else parse_replies(raw_replies)
        except HandlerRetry as exc:
            self.metrics.handler_seconds.labels("retry").observe(time.perf_counter() - started)
            return await self._retry(shard, batch, state, exc.reason, exc.retry_after_ms)
        except (HandlerPermanent, ValueError) as exc:
            self.metrics.handler_seconds.labels("permanent").observe(time.perf_counter() - started)
            reason = exc.reason if isinstance(exc, HandlerPermanent) else str(exc)
            return self._dead(f"handler: {reason}")
        self.metrics.handler_seconds.labels("ok").observe(time.perf_counter() - started)
        if not replies:
            await self._finish(shard, entry, batch, [], "no_reply")
            return None
        if self.settings.supersede:
            latest = await self.store.latest_seq(shard, batch["conversation"])
            if latest > batch["seq"]:
                # A newer, fuller batch of this conversation is closed: answer that one only.
                await self._finish(shard, entry, batch, [], "superseded")
                return None
        try:
            state.requests = self._requests(batch, replies)
        except ValueError as exc:
            return self._dead(f"cannot build Graph API requests: {exc}")
        return None

    def _requests(self, batch: dict[str, Any], replies: list[Reply]) -> list[GraphRequest]:
        version = self.settings.graph_version
        return [request for reply in replies for request in build_requests(batch, reply, version)]

    async def _send(
        self, shard: int, entry: Entry, batch: dict[str, Any], state: SendState
    ) -> Outcome:
        """Send the replies not yet accepted, in order, each within the account's limit."""
        assert state.requests is not None
        rate = self.settings.rate_global
        while state.sent < len(state.requests):
            request = state.requests[state.sent]
            if rate is not None:
                wait_ms = await self.limiter.acquire(
                    self.keys.account_rate(request.account_id), rate
                )
                if wait_ms > 0:
                    self.metrics.rate_waits.labels("account").inc()
                    await self.store.save(shard, batch["batch_id"], state)
                    return RetryLater(wait_ms, "account rate limit")
            started = time.perf_counter()
            try:
                await self.graph.post(request)
            except GraphError as exc:
                self.metrics.graph_seconds.labels(str(exc.status), str(exc.code)).observe(
                    time.perf_counter() - started
                )
                if exc.kind == "permanent":
                    return self._dead(f"graph api: code {exc.code}: {exc.message}")
                return await self._retry(shard, batch, state, str(exc), exc.retry_after_ms)
            self.metrics.graph_seconds.labels("200", "").observe(time.perf_counter() - started)
            state.sent += 1
        await self._finish(shard, entry, batch, state.requests, "sent")
        return None

    async def _retry(
        self,
        shard: int,
        batch: dict[str, Any],
        state: SendState,
        reason: str,
        retry_after_ms: int | None,
    ) -> Outcome:
        state.attempts += 1
        if state.attempts >= self.settings.send_max_attempts:
            return self._dead(f"gave up after {state.attempts} attempts: {reason}")
        await self.store.save(shard, batch["batch_id"], state)
        self.metrics.deliveries.labels("retried").inc()
        settings = self.settings
        delay_ms = max(
            retry_after_ms or 0,
            backoff_ms(state.attempts, settings.send_backoff_base_ms, settings.send_backoff_max_ms),
        )
        log.info("batch retried", batch_id=batch["batch_id"], reason=reason, delay_ms=delay_ms)
        return RetryLater(delay_ms, reason)

    def _dead(self, reason: str) -> Permanent:
        self.metrics.deliveries.labels("dead").inc()
        return Permanent(reason)

    async def _finish(
        self,
        shard: int,
        entry: Entry,
        batch: dict[str, Any],
        requests: list[GraphRequest],
        outcome: str,
    ) -> None:
        settings = self.settings
        items = [
            orjson.dumps({"role": "user", "mid": m.get("mid"), "text": m.get("text", ""),
                          "time": m.get("event_time")})
            for m in batch["messages"] if isinstance(m, dict)
        ]  # fmt: skip
        items += [orjson.dumps({"role": "bot", "text": _sent_text(r.payload)}) for r in requests]
        await self.store.finish(
            shard=shard,
            entry_id=entry.id,
            batch=batch,
            history_items=items,
            keep=settings.history_messages,
            ttl_s=settings.history_ttl_s,
        )
        self.metrics.deliveries.labels(outcome).inc()
        closed_at = batch.get("closed_at")
        if outcome == "sent" and isinstance(closed_at, int):
            self.metrics.batch_age.observe(max(0.0, time.time() - closed_at / 1000))

    async def mark_dead(self, entry: Entry, reason: str) -> None:
        """After a batch was dead-lettered: its successors must not wait for it forever."""
        del reason
        try:
            batch = decode_batch(entry.fields.get(b"batch"))
        except ValueError:
            return
        shard = self.keys.shard_of_outbound(entry.stream)
        await self.store.finish(
            shard=shard,
            entry_id=entry.id,
            batch=batch,
            history_items=[],
            keep=0,
            ttl_s=1,
            dead=True,
        )


def _sent_text(payload: dict[str, Any]) -> str:
    """The text a Graph request carried (Messenger/Instagram message, WhatsApp text), or ""."""
    message = payload.get("message")
    if isinstance(message, dict) and isinstance(message.get("text"), str):
        return str(message["text"])
    body = payload.get("text")
    if isinstance(body, dict) and isinstance(body.get("body"), str):
        return str(body["body"])
    return ""
