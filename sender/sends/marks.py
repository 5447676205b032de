"""What a pause does to a delivery, and the marks that let the processor tell lull's echoes.

A paused batch (README, "Human takeover") is finished with outcome `paused`, without a call
to the bot; its user messages still go into the history. A batch is paused when:

- it is stamped `"paused": true` (window_close.lua: a human had the conversation when its
  window closed). The stamp is in the batch, so a retry, a claim by another replica or a
  `lull dead replay` after the pause ended still never asks the bot; or
- the conversation is paused when the sender reads the batch (the pause EXISTS rides the
  read's round trip, deliver_check.lua), before the bot is called; or
- the same-moment rule: right before the batch's first send, while no reply of it has been
  accepted by the Graph API, the sender asks again, forced (not the safe_until shortcut of
  the ownership check). A pause recorded before that check wins: the bot's replies are
  dropped and the batch is finished `paused`. A pause recorded after it loses: that reply
  is already on its way, the batch's remaining replies are sent, and the pause applies to
  the next batch. Once one reply was accepted, the batch is never cut in half.

For the processor to tell its own Messenger and Instagram echoes without LULL_META_APP_ID,
the sender marks the conversation before each such send (Keys.send_inflight, expiring
after the Graph timeout plus INFLIGHT_MARGIN_MS) and, once the Graph API answered, remembers
the mid (Keys.sent_message) and removes the mark in one pipeline (processor/human_turns.py
explains the race this closes).
"""

from __future__ import annotations

from lull.common.batch import Batch
from lull.common.coalesce import Command
from lull.common.store.sent import SentMessage, SentMessages
from lull.sender.handoff import THREAD_PASSED

PAUSED = "paused"
"""The outcome (lull_sender_deliveries{outcome}) of a batch finished because of a pause."""
ECHO_PLATFORMS = frozenset({"messenger", "instagram"})
"""Platforms whose sends come back as message echoes."""
INFLIGHT_MARGIN_MS = 5000
"""The in-flight mark outlives the Graph call by this much: time to remember the mid."""
ECHO_MEMORY_S = 3600
"""How long a sent mid is remembered when LULL_SENT_MESSAGE_TTL_S is 0: Meta's echo comes
within seconds, its webhook retries within the hour."""


class SendMarks:
    """The in-flight mark and the remembered mids of Messenger and Instagram sends."""

    def __init__(self, sent: SentMessages, graph_timeout_ms: int, sent_ttl_s: int) -> None:
        self._sent = sent
        self._inflight_ms = graph_timeout_ms + INFLIGHT_MARGIN_MS
        self._sent_ttl_s = sent_ttl_s or ECHO_MEMORY_S

    def before(self, batch: Batch) -> list[Command]:
        """Commands to run before a send of this batch (none for WhatsApp)."""
        if batch.platform not in ECHO_PLATFORMS:
            return []
        return [self._sent.mark_in_flight(batch.conversation, batch.seq, self._inflight_ms)]

    def between(self, batch: Batch, message_id: str) -> list[Command]:
        """After a send that is not the batch's last: remember its mid, and keep the mark up
        for the next send (so that send needs no round trip of its own first)."""
        if batch.platform not in ECHO_PLATFORMS:
            return []
        return [*self._remember(batch, [message_id]), *self.before(batch)]

    def echoes(self, batch: Batch) -> bool:
        """Whether the batch's sends come back as echoes (Messenger, Instagram)."""
        return batch.platform in ECHO_PLATFORMS

    def done(self, batch: Batch, message_ids: list[str]) -> list[Command]:
        """When the batch is finished (riding its finish step, which then drops the mark):
        remember the mids of its sends, the last one's only now (until then the mark kept
        its echo waiting)."""
        if batch.platform not in ECHO_PLATFORMS:
            return []
        return self._remember(batch, message_ids)

    def _remember(self, batch: Batch, message_ids: list[str]) -> list[Command]:
        sent = SentMessage(batch.conversation, batch.seq)
        # THREAD_PASSED stands in the send progress for a pass of thread control: no mid.
        ids = [mid for mid in message_ids if mid and mid != THREAD_PASSED]
        return self._sent.remember(sent, ids, self._sent_ttl_s)


def paused_before_bot(batch: Batch, conversation_paused: bool) -> bool:
    """Whether a batch whose bot was not called yet is to be finished `paused`."""
    return batch.paused or conversation_paused
