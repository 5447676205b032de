"""Every Redis key lull uses is built here, and nowhere else.

Conversation state is split into shards; every key of shard s carries the hash
tag {s}, so one Lua script touches one Redis Cluster slot only.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names for one namespace and shard count."""

    namespace: str
    shards: int = 1

    def inbound(self) -> str:
        """Raw webhook bodies, written by ingest, read by the processor group."""
        return f"{self.namespace}:in"

    def dead(self) -> str:
        """Dead letters of every group."""
        return f"{self.namespace}:dead"

    def shard_of(self, conversation: str) -> int:
        """Stable shard of a conversation key: the same on every replica and restart."""
        return zlib.crc32(conversation.encode()) % self.shards

    def tag(self, shard: int) -> str:
        """The prefix all keys of one shard share, hash tag included."""
        return f"{self.namespace}:{{{shard}}}"

    def outbound(self, shard: int) -> str:
        """Closed batches of one shard, read by the sender group."""
        return f"{self.tag(shard)}:out"

    def all_outbound(self) -> list[str]:
        """The outbound stream of every shard."""
        return [self.outbound(shard) for shard in range(self.shards)]

    def conversation_prefix(self, shard: int) -> str:
        """Prefix of the per-conversation keys of a shard (the close script appends names)."""
        return f"{self.tag(shard)}:c:"

    def conversation(self, conversation: str) -> str:
        """A conversation's window and seen message ids, one string key."""
        return self.conversation_prefix(self.shard_of(conversation)) + conversation

    def due(self, shard: int) -> str:
        """Sorted set of a shard's open windows, scored by deadline (ms, Redis clock)."""
        return f"{self.tag(shard)}:due"

    def seq(self, shard: int) -> str:
        """Hash of a shard's conversations to the seq of their last emitted batch."""
        return f"{self.tag(shard)}:seq"

    def shard_of_outbound(self, stream: str) -> int:
        """The shard whose outbound stream this is."""
        return self.all_outbound().index(stream)

    def delivered(self, shard: int) -> str:
        """Hash of a shard's conversations to the seq of their last finished batch."""
        return f"{self.tag(shard)}:delivered"

    def dead_seqs(self, shard: int) -> str:
        """Hash of "<conversation>|<seq>" for batches dead-lettered before their turn."""
        return f"{self.tag(shard)}:deadseq"

    def dead_batches(self, shard: int) -> str:
        """Hash of batch_id -> id of the entry that died, for batches finished as dead and not
        delivered since: a replay of one of them is delivered, not skipped as a duplicate."""
        return f"{self.tag(shard)}:deadbatch"

    def send_state(self, shard: int, batch_id: str) -> str:
        """A batch's handler replies and send progress, kept only while it is retried."""
        return f"{self.tag(shard)}:send:{batch_id}"

    def history(self, conversation: str) -> str:
        """Capped list of a conversation's recent user messages and bot replies."""
        return f"{self.tag(self.shard_of(conversation))}:h:{conversation}"

    def sent_message(self, message_id: str) -> str:
        """The conversation and batch of a WhatsApp message the sender sent, by its wamid;
        expires. In the message id's own shard: a failed status names only the message."""
        return f"{self.tag(self.shard_of(message_id))}:sent:{message_id}"

    def failure_seen(self, shard: int, message_id: str) -> str:
        """Marks a failed status as recorded, so that Meta's retry of it is not counted
        again; in the shard of the conversation it was recorded in."""
        return f"{self.tag(shard)}:failseen:{message_id}"

    def delivery_failures(self, shard: int) -> str:
        """Capped list of a shard's most recent delivery failures, newest first (lull stats)."""
        return f"{self.tag(shard)}:failed"

    def user_rate(self, conversation: str) -> str:
        """Per-conversation rate-limiter state."""
        return f"{self.tag(self.shard_of(conversation))}:rl:{conversation}"

    def arrivals(self) -> str:
        """Messages as they arrive (LULL_READ_RECEIPTS=arrival): written by the processor,
        read by the sender's presence group, capped; one stream, best-effort."""
        return f"{self.namespace}:arrivals"

    def user_send_rate(self, conversation: str) -> str:
        """Per-conversation limiter of sends (messages), beside the one of batches."""
        return f"{self.tag(self.shard_of(conversation))}:rls:{conversation}"

    def account_rate(self, account_id: str) -> str:
        """Per sending account (page, IG account, phone number id) rate-limiter state."""
        return f"{self.namespace}:rl:acct:{account_id}"
