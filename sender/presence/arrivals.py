"""LULL_READ_RECEIPTS=arrival: the sender's `presence` group on the arrivals stream, where
the processor logs each new message as it is windowed (processor/arrivals.py). Each is
marked read at once, before its window closes: WhatsApp `status: read` on its message id,
Messenger and Instagram `mark_seen`.

Best-effort like all presence (sender/presence/calls.py): every entry is acknowledged, whatever
the call did; an arrival older than STALE_MS (a sender that was down) is skipped; of the
messages of one conversation in one read, only the last is marked (marking it read marks
the ones before it, and `mark_seen` names no message).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from lull.common.consumer import Entry, Outcome
from lull.common.conversation import Conversation
from lull.sender.presence.calls import Presence, Target

STALE_MS = 60_000


class ArrivalReads:
    """The presence group's handler: mark each conversation's latest arrival read."""

    def __init__(self, presence: Presence) -> None:
        self._presence = presence

    async def __call__(self, stream: str, entries: Sequence[Entry], /) -> list[Outcome]:
        """Mark read what is fresh; every entry is acknowledged."""
        now_ms = time.time() * 1000
        latest: dict[str, Target] = {}
        for entry in entries:
            target = _target(entry.fields)
            if target is not None and now_ms - _entry_ms(entry.id) <= STALE_MS:
                latest[target.conversation] = target
        for target in latest.values():
            await self._presence.arrived(target)
        return [None] * len(entries)


def _target(fields: dict[bytes, bytes]) -> Target | None:
    conversation = Conversation.from_fields(fields)
    try:
        mid = fields[b"mid"].decode()
    except (KeyError, UnicodeDecodeError):
        return None
    if conversation is None:
        return None
    return Target(conversation.platform, conversation.account_id, conversation.user_id, mid)


def _entry_ms(entry_id: str) -> int:
    """The Redis time (ms) a stream entry was added, from its id."""
    millis, _, _ = entry_id.partition("-")
    return int(millis) if millis.isdigit() else 0
