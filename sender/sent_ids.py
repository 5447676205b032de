"""The sender's memory of the WhatsApp messages it sent, so that a failure reported later
(a `failed` status webhook) can be matched to its conversation and batch.

One key per message id (`Keys.sent_message`), with an expiry: a status names only the
message id, so the key must be found from that id alone, and a key of its own is the only
layout that expires per message and works on Redis Cluster (each SET is a one-key command
in the message id's own slot). Written after the batch is finished, in one pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from common.consumer_types import REDIS_FAILURES
from common.delivery import SentMessage
from common.keys import Keys
from common.redis_conn import RedisClient

log = structlog.get_logger("lull.sender")

# The failure reports lull handles are WhatsApp's `failed` statuses (Meta's status messages
# webhook reference); ids of other platforms' messages would never be looked up.
PLATFORMS = frozenset({"whatsapp"})


class SentIds:
    """Remembers message id -> (conversation, seq) for ttl_s; 0 remembers nothing."""

    def __init__(self, client: RedisClient, keys: Keys, ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s

    async def remember(self, platform: str, sent: SentMessage, message_ids: Sequence[str]) -> None:
        """Store one key per message id. Best effort: the batch is finished already, so a
        Redis failure here is logged, and a later failure of these messages is counted as
        unmatched instead of failing the batch."""
        if self._ttl_s <= 0 or platform not in PLATFORMS or not message_ids:
            return
        value = sent.encode()
        pipe = self._client.pipeline(transaction=False)
        for message_id in message_ids:
            pipe.set(self._keys.sent_message(message_id), value, ex=self._ttl_s)
        try:
            await pipe.execute()
        except REDIS_FAILURES as exc:
            log.warning(
                "sent message ids not remembered",
                conversation=sent.conversation,
                seq=sent.seq,
                messages=len(message_ids),
                error=str(exc),
            )
