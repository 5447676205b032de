"""Every Redis key lull uses is built here, and nowhere else; so are the consumer groups' names.

Conversation state is split into shards; every key of shard s carries the hash
tag {s}, so one Lua script touches one Redis Cluster slot only.

What lull keeps about one conversation, and for how long (each method below says more):

- c:<conversation>: its open window (lua/window_layout.lua); while open, deleted when
  emitted. Its deadline is its member of the shard's due set, while open.
- seen:<conversation>: message ids of its closed windows; LULL_DEDUPE_TTL_S after the last
  write.
- cs:<conversation>: seq, delivered, dead marks, the user's last message time
  (conversation_state); LULL_CONVERSATION_TTL_S after the last batch emitted or finished.
  h:<conversation> (the history the bot receives, capped), o:<conversation> (the last
  finished batches, capped) and hseen:<mid> (a human's message recorded once) live as long.
- pause:<conversation>: its pause, while a human has it; until the pause ends.
- inflight:<conversation>: a Messenger or Instagram send in flight; the Graph timeout and
  5 s, or until the batch is finished.
- sent:<message id>: the batch that sent a message; LULL_SENT_MESSAGE_TTL_S (an hour for
  echoes when 0).
- send:<batch id>: a retried batch's replies and progress; until it is finished, a day at
  most.
- rl:<conversation>, rls:<conversation>: its rate limiters; until back at rest; with
  :uses, their last uses, for a PERIOD.
- failseen:<message id>: a failed status recorded once; LULL_DEDUPE_TTL_S.
- api:<message id>: a message the send API accepted (its state) and apikey:<conversation>
  <key>: the Idempotency-Key that accepted it; LULL_API_IDEMPOTENCY_TTL_S (api_messages.py).

Per shard: the outbound stream (out), the due set, the last delivery failures (failed,
capped); per namespace: the inbound, dead-letter and arrivals streams, the accounts' rate
limiters. 0.1's shard-wide hashes are legacy.py's.

The inbound stream is one key ({ns}:in) unless LULL_INBOUND_SHARDS splits it into parts
by conversation (inbound_part): part i of n is `{ns}:in:i/n:{tag}`, its hash tag picked
so that the n parts fall in the n equal ranges of the 16384 cluster slots, one per
master on a cluster whose masters hold equal ranges. docs/scaling.md says how to move a
running deployment from one count to another (LULL_INBOUND_DRAIN).
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

PROCESSOR_GROUP = "processor"
"""The processor's consumer group on the inbound stream."""
SENDER_GROUP = "sender"
"""The sender's consumer group on every outbound stream."""
PRESENCE_GROUP = "presence"
"""The sender's presence group on the arrivals stream (LULL_READ_RECEIPTS=arrival)."""
MAX_INBOUND_PARTS = 256
"""The most parts LULL_INBOUND_SHARDS may split the inbound stream into (far above what
a Redis Cluster of sensible size needs: docs/scaling.md)."""


def inbound_part(conversation: str, parts: int) -> int:
    """The part of an inbound stream split into parts that carries a conversation's
    events: stable, the same in ingest (which writes) and the processor (which filters)."""
    return zlib.crc32(conversation.encode()) % parts


@functools.cache
def _inbound_tag(part: int, parts: int) -> str:
    """The hash tag of part: the first `i<k>` whose slot is in part's equal share of the
    slots, so that the parts spread over the masters instead of hashing where they fall
    ({0}, {1}, {2} land on two masters of three). At most ~parts tries, once per process."""
    first = part * REDIS_CLUSTER_HASH_SLOTS // parts
    last = (part + 1) * REDIS_CLUSTER_HASH_SLOTS // parts
    salt = 0
    while not first <= key_slot(f"i{salt}".encode()) < last:
        salt += 1
    return f"i{salt}"


@functools.cache
def _inbound_streams(inbound: str, parts: int) -> tuple[str, ...]:
    """Part i of parts is `<inbound>:i/parts:{tag}`; 1 part is inbound itself."""
    if parts == 1:
        return (inbound,)
    return tuple(f"{inbound}:{i}/{parts}:{{{_inbound_tag(i, parts)}}}" for i in range(parts))


@dataclass(frozen=True)
class Keys:
    """Key names for one namespace and shard count."""

    namespace: str
    shards: int = 1
    inbound_parts: int = 1
    """LULL_INBOUND_SHARDS: the parts ingest writes the inbound stream to."""
    inbound_drain: tuple[int, ...] = ()
    """LULL_INBOUND_DRAIN: former part counts whose streams the processor still reads."""

    def inbound(self) -> str:
        """Raw webhook bodies, written by ingest, read by the processor group: the one
        inbound stream when LULL_INBOUND_SHARDS is 1 (the default, the layout before it)."""
        return f"{self.namespace}:in"

    def inbound_streams(self, parts: int) -> list[str]:
        """The streams of an inbound stream split into parts; [inbound()] for 1."""
        return list(_inbound_streams(self.inbound(), parts))

    def all_inbound(self) -> list[str]:
        """Every inbound stream the processor reads: the parts of the former counts being
        drained, then today's. Former first: one XREADGROUP hands the handler its streams in
        this order, so a conversation's older events, left in a former stream, are applied
        before its newer ones when both are read together."""
        streams: list[str] = []
        for parts in (*self.inbound_drain, self.inbound_parts):
            streams += [s for s in self.inbound_streams(parts) if s not in streams]
        return streams

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
        """A conversation's open window, one string key (lua/window_apply.lua);
        before 0.3 it also held the seen message ids, moved to seen() on first touch."""
        return self.conversation_prefix(self.shard_of(conversation)) + conversation

    def seen(self, conversation: str) -> str:
        """Sorted set of the message ids of a conversation's closed windows (each as the first
        24 hex digits of the SHA-1 of its JSON, lua/window_layout.lua) scored by when
        they were seen (Redis clock, s): the dedupe of lua/window_apply.lua, trimmed
        past LULL_DEDUPE_TTL_S and expiring that long after its last write."""
        return self.seen_prefix(self.shard_of(conversation)) + conversation

    def seen_prefix(self, shard: int) -> str:
        """Prefix of the seen-id sets of a shard (the close script appends names)."""
        return f"{self.tag(shard)}:seen:"

    def due(self, shard: int) -> str:
        """Sorted set of a shard's open windows, scored by deadline (ms, Redis clock)."""
        return f"{self.tag(shard)}:due"

    def conversation_state(self, conversation: str) -> str:
        """Hash of what lull keeps about a conversation between its batches; every write
        refreshes its expiry, so it goes LULL_CONVERSATION_TTL_S after the last batch.

        Fields (written by lua/window_close.lua and lua/deliver_mark.lua,
        created by lua/conversation_life.lua):
        - `seq`: seq of the conversation's newest emitted batch. A new life (no hash) starts
          at a base from the Redis clock in ms, not at 0 (conversation_life.lua says why).
        - `delivered`: seq of its newest finished batch; starts at the same base.
        - `deadseq:<seq>`: 1 for a batch dead-lettered before its turn, counted as finished
          when delivered reaches it.
        - `deadbatch:<seq>`: id of the entry in which batch <seq> finished as dead, while
          not delivered since: a replay of it (`lull dead replay`) is delivered.
        - `user_last_ms`: Redis-clock ms of the user's newest message in an emitted batch
          (the start of Meta's 24-hour reply window).
        """
        return self.conversation_state_prefix(self.shard_of(conversation)) + conversation

    def conversation_state_prefix(self, shard: int) -> str:
        """Prefix of the conversation state hashes of a shard (the close script appends names)."""
        return f"{self.tag(shard)}:cs:"

    @staticmethod
    def dead_seq_field(seq: int) -> str:
        """Field of conversation_state marking batch seq dead before its turn."""
        return f"deadseq:{seq}"

    @staticmethod
    def dead_batch_field(seq: int) -> str:
        """Field of conversation_state marking batch seq finished as dead (replayable)."""
        return f"deadbatch:{seq}"

    def shard_of_outbound(self, stream: str) -> int:
        """The shard whose outbound stream this is."""
        return self.all_outbound().index(stream)

    def send_state(self, shard: int, batch_id: str) -> str:
        """A batch's handler replies and send progress, kept only while it is retried."""
        return f"{self.tag(shard)}:send:{batch_id}"

    def history(self, conversation: str) -> str:
        """Capped list of a conversation's recent user messages and bot replies; expires
        with conversation_state."""
        return self.history_prefix(self.shard_of(conversation)) + conversation

    def history_prefix(self, shard: int) -> str:
        """Prefix of the history lists of a shard (the close script appends names)."""
        return f"{self.tag(shard)}:h:"

    def transcripts(self, conversation: str) -> str:
        """Hash of a conversation's voice note transcripts, message id to JSON (transcripts.py):
        written once per message, so a retry or replay never transcribes again;
        expires with conversation_state."""
        return f"{self.tag(self.shard_of(conversation))}:tr:{conversation}"

    def outcomes(self, conversation: str) -> str:
        """Capped list of a conversation's last finished batches, newest first (lull
        conversation, the admin API); expires like the history."""
        return f"{self.tag(self.shard_of(conversation))}:o:{conversation}"

    def pause(self, conversation: str) -> str:
        """A conversation's pause (lua/pause.lua): exists exactly while a human has the
        conversation, expiring at the pause's end on the Redis clock."""
        return self.pause_prefix(self.shard_of(conversation)) + conversation

    def pause_prefix(self, shard: int) -> str:
        """Prefix of a shard's pause keys (the close script appends the conversation)."""
        return f"{self.tag(shard)}:pause:"

    def send_inflight(self, conversation: str) -> str:
        """Set by the sender just before a Messenger or Instagram send, until the message id
        Meta answered is remembered (sent_message): an echo of an unknown id that comes
        meanwhile may be lull's own, and waits (turns.py)."""
        return f"{self.tag(self.shard_of(conversation))}:inflight:{conversation}"

    def human_seen(self, conversation: str, message_id: str) -> str:
        """Marks a human's message (an echo not sent by lull) as recorded in the history, so
        that Meta's redelivery of it is not recorded twice; expires."""
        return f"{self.tag(self.shard_of(conversation))}:hseen:{message_id}"

    def sent_message(self, message_id: str) -> str:
        """The conversation and batch of a message the sender sent, by its id (a WhatsApp
        wamid: failed statuses; a Messenger or Instagram mid: echoes); expires. In the message
        id's own shard: a status or an echo names the message, the lookup needs nothing more."""
        return f"{self.tag(self.shard_of(message_id))}:sent:{message_id}"

    def failure_seen(self, shard: int, message_id: str) -> str:
        """Marks a failed status as recorded, so that Meta's retry of it is not counted
        again; in the shard of the conversation it was recorded in."""
        return f"{self.tag(shard)}:failseen:{message_id}"

    def delivery_failures(self, shard: int) -> str:
        """Capped list of a shard's most recent delivery failures, newest first (lull stats)."""
        return f"{self.tag(shard)}:failed"

    def api_message(self, shard: int, message_id: str) -> str:
        """Hash of a message the send API accepted (api_messages.py): its state (queued,
        sent, failed, ...), Meta's ids or the reason; expires. In the shard of its
        conversation: its id names the shard."""
        return f"{self.tag(shard)}:api:{message_id}"

    def api_idempotency(self, conversation: str, key: str) -> str:
        """The id of the message the send API accepted for this Idempotency-Key in this
        conversation; expires (a key is scoped by its conversation)."""
        return f"{self.tag(self.shard_of(conversation))}:apikey:{conversation}\x1f{key}"

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

    @staticmethod
    def rate_uses(limiter: str) -> str:
        """The last uses of a rate limiter's units (lua/rate_use.lua), beside its state (and
        in its hash tag); for PERIOD after the last use."""
        return f"{limiter}:uses"
