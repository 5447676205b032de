"""The messages the sender sent, remembered by their id for a while: a WhatsApp `failed`
status (failures.py) and a Messenger or Instagram echo (processor/human_turns.py)
name only the message id, and are matched to the conversation and batch that sent it.

One key per message id (Keys.sent_message), with an expiry: a status names only the message
id, so the key must be found from that id alone, and a key of its own is the only layout
that expires per message and works on Redis Cluster (each SET is a one-key command in the
message id's own slot). The commands ride the sender's shared pipeline (the finish step's,
or a send's ownership check): remembering costs no round trip of its own.

Also the in-flight mark (Keys.send_inflight): set just before a Messenger or Instagram send,
dropped by the finish step (lua/deliver_mark.lua); an echo of an unknown id that comes while
it is up may be lull's own, and waits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from lull.common.coalesce import Command
from lull.common.store.keys import Keys


@dataclass(frozen=True, slots=True)
class SentMessage:
    """The batch that sent a message (its conversation and seq), stored under the message's
    id for a while. Kept this small on purpose: one is stored per WhatsApp message sent."""

    conversation: str
    seq: int

    def encode(self) -> bytes:
        """The stored value."""
        return orjson.dumps({"c": self.conversation, "s": self.seq})

    @classmethod
    def decode(cls, raw: bytes) -> SentMessage | None:
        """The stored value read back; None when it is not one (never raises)."""
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        conversation, seq = value.get("c"), value.get("s")
        if not isinstance(conversation, str) or type(seq) is not int:
            return None
        return cls(conversation, seq)


class SentMessages:
    """The commands that remember sent message ids and mark sends in flight."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys

    def remember(self, sent: SentMessage, message_ids: Iterable[str], ttl_s: int) -> list[Command]:
        """SETs that remember each message id as sent by `sent`, for ttl_s."""
        value = sent.encode()
        return [("SET", self._keys.sent_message(mid), value, "EX", ttl_s) for mid in message_ids]

    def mark_in_flight(self, conversation: str, seq: int, ttl_ms: int) -> Command:
        """The SET that marks a send to conversation in flight, for ttl_ms."""
        return ("SET", self._keys.send_inflight(conversation), seq, "PX", ttl_ms)
