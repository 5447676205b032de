"""What lull holds about one conversation, read in one place (`lull conversation`, the admin
API): open window, seq, delivered, pause, the user's last message, the last outcomes.

Every read of seq, delivered and window state for operators is here, so a change of where
they live (per-conversation keys instead of shard-wide hashes) is made in this module only.
All keys named are in the conversation's shard (one hash tag): one pipeline, one node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from lull.common.lifetime import REPLY_WINDOW_MS
from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.legacy import LegacyKeys
from lull.common.store.outcomes import OutcomeRecord
from lull.common.store.pauses import Pause
from lull.common.store.window_reads import WINDOW_HEADER, OpenWindow, open_window


@dataclass(frozen=True, slots=True)
class ConversationState:
    """One conversation as Redis holds it now."""

    conversation: str
    read_at_ms: int
    """The reader's wall clock."""
    window: OpenWindow | None
    seq: int
    """The seq of the last batch the processor closed (0: none)."""
    delivered: int
    """The seq of the last batch the sender finished (0: none)."""
    pause: Pause | None
    last_user_message_ms: int | None
    last_user_message_from: str
    """Where that time was read: window, batch, history, or "" when unknown."""
    outcomes: list[OutcomeRecord]
    """The last finished batches, newest first."""

    @property
    def reply_window_ends_at_ms(self) -> int | None:
        """When Meta's 24-hour window to answer the user freely ends (or ended), from the
        user's last message lull knows; None when unknown."""
        last_ms = self.last_user_message_ms
        return None if last_ms is None else last_ms + REPLY_WINDOW_MS

    @property
    def known(self) -> bool:
        """Whether Redis holds anything about the conversation."""
        return bool(self.window or self.seq or self.delivered or self.pause or self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `lull conversation --json` and the admin API."""
        window = self.window
        pause = self.pause
        return {
            "conversation": self.conversation,
            "read_at_ms": self.read_at_ms,
            "window": None
            if window is None
            else {
                "opened_at_ms": window.opened_at_ms,
                "deadline_ms": window.deadline_ms,
                "messages": window.messages,
                "bytes": window.bytes,
                "first_event_ms": window.first_event_ms,
                "last_event_ms": window.last_event_ms,
            },
            "seq": self.seq,
            "delivered": self.delivered,
            "paused": pause is not None,
            "pause": None
            if pause is None
            else {
                "since_ms": pause.since_ms,
                "until_ms": pause.until_ms,
                "reason": pause.reason,
                "by": pause.by,
                "human_last_ms": pause.human_last_ms or None,
                "hold": pause.hold,
            },
            "last_user_message_ms": self.last_user_message_ms,
            "last_user_message_from": self.last_user_message_from or None,
            "reply_window_ends_at_ms": self.reply_window_ends_at_ms,
            "outcomes": [record.to_dict() for record in self.outcomes],
        }


async def read_conversation(
    client: RedisClient, keys: Keys, conversation: str
) -> ConversationState:
    """Read everything about conversation in one round trip."""
    shard = keys.shard_of(conversation)
    pause_key = keys.pause(conversation)
    pipe = client.pipeline(transaction=False)
    pipe.getrange(keys.conversation(conversation), 0, WINDOW_HEADER.size - 1)
    pipe.hmget(keys.conversation_state(conversation), "seq", "delivered", "user_last_ms")
    # A conversation 0.1 knew and 0.2 has not touched yet keeps its seqs in 0.1's hashes.
    for command in LegacyKeys.of(keys, shard).reads(conversation):
        pipe.execute_command(*command)
    pipe.hgetall(pause_key)
    pipe.pttl(pause_key)
    pipe.lrange(keys.outcomes(conversation), 0, -1)
    pipe.lrange(keys.history(conversation), -1000, -1)
    replies = await pipe.execute()
    header, (seq, delivered, user_last_ms), old_seq, old_delivered, *rest = replies
    pause_fields, pause_ttl_ms, outcomes, history = rest
    if seq is None and delivered is None:
        seq, delivered = old_seq, old_delivered
    window = open_window(header)
    decoded = (OutcomeRecord.decode(item, conversation) for item in outcomes)
    records = [record for record in decoded if record is not None]
    last_ms, source = _last_user_message(window, int(user_last_ms or 0), records, history)
    return ConversationState(
        conversation=conversation,
        read_at_ms=int(time.time() * 1000),
        window=window,
        seq=int(seq or 0),
        delivered=int(delivered or 0),
        pause=Pause.from_hash(pause_fields, int(pause_ttl_ms)),
        last_user_message_ms=last_ms,
        last_user_message_from=source,
        outcomes=records,
    )


def _last_user_message(
    window: OpenWindow | None,
    state_ms: int,
    records: list[OutcomeRecord],
    history: list[bytes],
) -> tuple[int | None, str]:
    """The user's newest message time: the open window's, else the one the close script
    recorded in the conversation's state (user_last_ms), else the newest finished batch's,
    else the newest user item of the history (a conversation 0.2 has not closed a batch of)."""
    if window is not None and window.last_event_ms > 0:
        return window.last_event_ms, "window"
    if state_ms > 0:
        return state_ms, "state"
    for record in records:
        if record.last_user_message_ms > 0:
            return record.last_user_message_ms, "batch"
    for raw in reversed(history):
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(item, dict) and item.get("role") == "user":
            moment = item.get("time")
            if isinstance(moment, int) and moment > 0:
                return moment, "history"
    return None, ""
