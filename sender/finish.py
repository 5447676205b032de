"""A batch's last step: one atomic finish (common/store/lua/deliver_mark.lua) with its history, its
outcome record and the message ids its echoes or failed statuses are told by; then counted
and logged. Also the finish of a batch the consumer loop dead-lettered."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from lull.common.batch import Batch
from lull.common.consumer import Entry
from lull.common.store.api_messages import ApiSend, finished_commands
from lull.common.store.deliveries import DeliveryStore, SendState
from lull.common.store.keys import Keys
from lull.common.store.outcomes import outcome_record
from lull.common.store.sent import SentMessage
from lull.sender.api_sends import DEAD, api_state, sent_as
from lull.sender.graph.client import GraphRequest
from lull.sender.handoff import message_requests
from lull.sender.history_items import history_items, unsent_items
from lull.sender.metrics import SenderMetrics
from lull.sender.progress import LocalProgress
from lull.sender.reply_window import WINDOW_CLOSED
from lull.sender.sends.marks import SendMarks
from lull.sender.sends.sent_ids import SentIds
from lull.sender.settings import SenderSettings

log = structlog.get_logger("lull.sender")


@dataclass
class Finisher:
    """Finishes batches for one sender replica."""

    settings: SenderSettings
    keys: Keys
    store: DeliveryStore
    metrics: SenderMetrics
    sent_ids: SentIds
    progress: LocalProgress
    marks: SendMarks | None

    async def finish(
        self,
        *,
        shard: int,
        entry_id: str,
        batch: Batch,
        state: SendState,
        replay: bool,
        requests: list[GraphRequest],
        outcome: str,
    ) -> None:
        """Mark the batch finished with outcome; requests are the replies that were sent."""
        settings = self.settings
        items = history_items(batch, requests, state.message_ids, role=sent_as(batch))
        if outcome == WINDOW_CLOSED:
            unsent = message_requests((state.requests or [])[state.sent :])
            items += unsent_items(unsent, int(time.time() * 1000))
        sent = SentMessage(batch.conversation, batch.seq)
        ids = state.message_ids
        # Messenger/Instagram: the mids for their echoes (the last send's for the first time;
        # the finish drops the in-flight mark after them); WhatsApp: for failed statuses.
        remember = (
            self.marks.done(batch, ids)
            if self.marks is not None and self.marks.echoes(batch)
            else self.sent_ids.commands(batch.platform, sent, ids)
        )
        if replay and outcome in ("sent", "no_reply"):
            outcome = "replayed"
        send = ApiSend.of(batch)
        if send is not None:
            # A send API message's state ends beside the finish (GET /v1/messages/{id}).
            remember = [
                *remember,
                *finished_commands(self.keys, shard, send, api_state(outcome), message_ids=ids),
            ]
        remembered = await self.store.finish(
            shard=shard,
            entry_id=entry_id,
            batch=batch,
            history_items=items,
            keep=settings.history_messages,
            ttl_s=settings.conversation_ttl_s,
            outcome=outcome_record(batch, outcome, len(requests)),
            outcomes_kept=settings.outcomes_kept,
            also=remember,
        )
        self.progress.forget(batch.batch_id)
        lost = [r for r in remembered if isinstance(r, Exception)]
        if lost:
            # The batch is finished; only matching a later delivery failure suffers (counted
            # as unmatched then).
            log.warning(
                "sent message ids not remembered",
                conversation=batch.conversation,
                seq=batch.seq,
                messages=len(lost),
                error=str(lost[0]),
            )
        self.metrics.deliveries.labels(outcome).inc()
        closed_at = batch.closed_at
        age_s = time.time() - closed_at / 1000 if isinstance(closed_at, int) else None
        if outcome == "sent" and age_s is not None:
            self.metrics.batch_age.observe(max(0.0, age_s))
        log.info(
            "batch finished",
            outcome=outcome,
            conversation=batch.conversation,
            seq=batch.seq,
            messages=len(batch.messages),
            replies=len(requests),
            age_ms=None if age_s is None else round(age_s * 1000),
        )

    async def mark_dead(self, entry: Entry, reason: str = "") -> None:
        """After a batch was dead-lettered: its successors must not wait for it forever, and
        a replay of it (`lull dead replay`) is to be delivered, not skipped as a duplicate.
        A send API message's state becomes failed, with the reason."""
        try:
            batch = Batch.decode(entry.fields.get(b"batch"))
        except ValueError:
            return
        self.progress.forget(batch.batch_id)
        shard = self.keys.shard_of_outbound(entry.stream)
        send = ApiSend.of(batch)
        failed = (
            []
            if send is None
            else finished_commands(self.keys, shard, send, DEAD, message_ids=[], reason=reason)
        )
        await self.store.finish(
            also=failed,
            shard=shard,
            entry_id=entry.id,
            batch=batch,
            history_items=[],
            keep=0,
            ttl_s=self.settings.conversation_ttl_s,
            dead=True,
            outcome=outcome_record(batch, "dead", 0),
            outcomes_kept=self.settings.outcomes_kept,
        )
