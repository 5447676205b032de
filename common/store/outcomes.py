"""A conversation's last finished batches and how each ended, for operators.

The sender pushes one record when it finishes a batch (`DeliveryStore.finish`'s `also`
commands, in the same pipeline as the finish step: no round trip of its own); `lull
conversation` and the admin API read them. A capped list, newest first, expiring like the
history: an operator asks about a conversation that is live, not about one long gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from lull.common.batch import Batch

DEFAULT_KEEP = 10
"""Records kept per conversation."""


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """One finished batch."""

    batch_id: str
    seq: int
    outcome: str
    """sent, no_reply, superseded, replayed, handoff, paused, dead, window_closed, ..."""
    replies: int
    """Send API requests that carried the bot's replies (0 when none went out)."""
    finished_at_ms: int
    """The sender's wall clock when it finished the batch."""
    last_user_message_ms: int = 0
    """The batch's last_event_time: when the user last wrote, as of this batch."""

    def encode(self, conversation: str) -> bytes:
        """One list item. The batch id is left out when it is the processor's own
        (conversation:seq, nearly always): a third of the record's bytes."""
        item = self.to_dict()
        if self.batch_id == f"{conversation}:{self.seq}":
            del item["batch_id"]
        return orjson.dumps(item)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (also what `--json` and the admin API show)."""
        return {
            "batch_id": self.batch_id,
            "seq": self.seq,
            "outcome": self.outcome,
            "replies": self.replies,
            "finished_at_ms": self.finished_at_ms,
            "last_user_message_ms": self.last_user_message_ms,
        }

    @classmethod
    def decode(cls, raw: bytes, conversation: str) -> OutcomeRecord | None:
        """From one list item of conversation; None when it is not a record (never raises:
        display only)."""
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(item, dict):
            return None
        try:
            seq = int(item["seq"])
            return cls(
                batch_id=str(item.get("batch_id") or f"{conversation}:{seq}"),
                seq=seq,
                outcome=str(item["outcome"]),
                replies=int(item.get("replies", 0)),
                finished_at_ms=int(item.get("finished_at_ms", 0)),
                last_user_message_ms=int(item.get("last_user_message_ms", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


def outcome_record(batch: Batch, outcome: str, replies: int) -> bytes:
    """How batch ended, now, as one list item (the sender's finish script pushes it)."""
    record = OutcomeRecord(
        batch.batch_id, batch.seq, outcome, replies, int(time.time() * 1000), batch.last_event_time
    )
    return record.encode(batch.conversation)
