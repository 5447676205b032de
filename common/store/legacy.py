"""The upgrade from 0.1, in one module with lua/legacy.lua, so that both can be deleted in
one commit when 0.1 is no longer supported (with the lines that pass these keys along).

0.1 kept seq and delivered of every conversation of a shard in shard-wide hashes that never
expired, a dead batch that ran ahead of its turn as "<conversation>|<seq>" in a third, and
a batch finished as dead (batch_id -> entry) in a fourth. 0.2 keeps all of it in the
conversation's state hash (keys.py, conversation_state) and never writes these; it reads
them to move a conversation's fields the first time it touches the conversation
(lua/legacy.lua, legacy_move, in the same atomic step), and clears what it moved. The
hashes carry the shard's hash tag, so every step stays in one slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from lull.common.coalesce import Command
from lull.common.store.keys import Keys


@dataclass(frozen=True, slots=True)
class LegacyKeys:
    """0.1's four shard-wide hashes of one shard."""

    seq: str
    """conversation -> seq of its last emitted batch."""
    delivered: str
    """conversation -> seq of its last finished batch."""
    dead_seqs: str
    """"<conversation>|<seq>" -> 1 for batches dead-lettered before their turn."""
    dead_batches: str
    """batch_id -> id of the entry that died, for batches finished as dead and not
    delivered since: a replay of one of them is delivered, not skipped as a duplicate. Read
    and cleared by batch id (never written) until its marks are used up."""

    @classmethod
    def of(cls, keys: Keys, shard: int) -> LegacyKeys:
        """The hashes of shard."""
        tag = keys.tag(shard)
        return cls(f"{tag}:seq", f"{tag}:delivered", f"{tag}:deadseq", f"{tag}:deadbatch")

    def moved(self) -> tuple[str, str, str]:
        """The hashes a conversation's life is moved from (ensure_life's legacy arguments)."""
        return self.seq, self.delivered, self.dead_seqs

    def reads(self, conversation: str) -> list[Command]:
        """HGETs of the conversation's seq and delivered in 0.1's hashes (see seqs)."""
        return [("HGET", self.seq, conversation), ("HGET", self.delivered, conversation)]


def seqs(seq: bytes | None, delivered: bytes | None) -> tuple[int, int] | None:
    """(seq, delivered) of a conversation 0.1 knew and 0.2 has not moved yet, from the
    replies of LegacyKeys.reads; None when 0.1 knew nothing of it."""
    if seq is None and delivered is None:
        return None
    return int(seq or 0), int(delivered or 0)
