"""LULL_READ_RECEIPTS=arrival: each new message, as it is windowed, is logged on one capped
stream for the sender's presence group to mark read (the processor holds no Graph token).

Best-effort like all presence: one XADD per new message in one pipeline per read, capped
at MAX_ENTRIES (approximate trim); a failure is logged and the messages are still windowed
(they are then read at pick-up, with the batch's typing on WhatsApp, or not at all on
Messenger and Instagram).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from lull.common.conversation import Conversation
from lull.common.events import Event
from lull.common.redis_conn import REDIS_FAILURES, RedisClient
from lull.common.store.keys import Keys

log = structlog.get_logger("lull.processor")

# Minutes of traffic at any rate worth marking read; older arrivals are of no use.
MAX_ENTRIES = 10_000


class ArrivalLog:
    """Writes new messages to the arrivals stream."""

    def __init__(self, client: RedisClient, keys: Keys) -> None:
        self._client = client
        self._stream = keys.arrivals()

    async def record(self, events: Sequence[Event]) -> None:
        """Log each event (a new message) for the sender; never raises for Redis."""
        if not events:
            return
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            conversation = Conversation(event.platform, event.account_id, event.user_id)
            fields = {**conversation.fields(), "mid": event.mid}
            pipe.xadd(self._stream, fields, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
        try:
            await pipe.execute()
        except REDIS_FAILURES as exc:
            log.warning("arrivals not logged", messages=len(events), error=str(exc))
