"""The sender's memory of the messages it sent, so that a failure reported later (a WhatsApp
`failed` status webhook) can be matched to its conversation and batch, and a Messenger or
Instagram echo told apart from a human's (processor/human_turns.py).

One key per message id (`Keys.sent_message`), with an expiry: a status names only the
message id, so the key must be found from that id alone, and a key of its own is the only
layout that expires per message and works on Redis Cluster (each SET is a one-key command
in the message id's own slot). The SETs ride in the same pipeline as the batch's finish
step (DeliveryStore.finish): remembering costs no round trip of its own and does not widen the
gap between the last send and the mark. Messenger and Instagram mids are remembered right
after each send too (sender/sends/marks.py: SendMarks, for echoes that come within a second);
the finish step remembers them once more, in case that first write failed.
"""

from __future__ import annotations

from collections.abc import Sequence

from lull.common.coalesce import Command
from lull.common.store.sent import SentMessage, SentMessages
from lull.sender.handoff import THREAD_PASSED

# WhatsApp: `failed` statuses (Meta's status messages webhook reference); Messenger and
# Instagram: message echoes (Meta's message_echoes reference) name the mid.
PLATFORMS = frozenset({"whatsapp", "messenger", "instagram"})


class SentIds:
    """Remembers message id -> (conversation, seq) for ttl_s; 0 remembers nothing."""

    def __init__(self, sent: SentMessages, ttl_s: int) -> None:
        self._sent = sent
        self._ttl_s = ttl_s

    def commands(
        self, platform: str, sent: SentMessage, message_ids: Sequence[str]
    ) -> list[Command]:
        """The SETs that remember message_ids as sent by `sent`; none when nothing is to be
        remembered (another platform, or LULL_SENT_MESSAGE_TTL_S=0)."""
        if self._ttl_s <= 0 or platform not in PLATFORMS:
            return []
        ids = [mid for mid in message_ids if mid and mid != THREAD_PASSED]
        return self._sent.remember(sent, ids, self._ttl_s)
