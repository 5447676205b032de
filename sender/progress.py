"""What this replica itself has done for a batch, kept in memory across its retries.

The send state in Redis is saved when a batch is retried; if Redis fails between a Graph
API send and that save (or the finish step), the state in Redis is behind what was sent,
and a retry would send those replies again. A replica that is still alive remembers: its
own progress wins over an older state read back from Redis. Only a crash of the replica
in that gap repeats a send (the documented at-least-once gap).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from lull.common.store.deliveries import SendState

MAX_BATCHES = 4096
"""Batches remembered at once; the oldest are forgotten first (they fall back to Redis)."""


@dataclass
class LocalProgress:
    """batch_id -> the SendState this replica is working on, most recently used last."""

    max_batches: int = MAX_BATCHES
    _states: OrderedDict[str, SendState] = field(default_factory=OrderedDict)

    def adopt(self, batch_id: str, stored: SendState) -> SendState:
        """The state to work on: ours when it is ahead of the stored one, else the stored.

        The returned object is remembered, so progress made on it is kept even when the
        save that should follow fails."""
        ours = self._states.pop(batch_id, None)
        state = stored
        if ours is not None:
            # A read shown before a save that failed still counts (sender/presence/calls.py).
            stored.read_shown = stored.read_shown or ours.read_shown
        if ours is not None and ours.requests is not None:
            behind = stored.requests is None or stored.sent < ours.sent
            if behind:
                state = ours
                state.attempts = max(ours.attempts, stored.attempts)
        self._states[batch_id] = state
        while len(self._states) > self.max_batches:
            self._states.popitem(last=False)
        return state

    def forget(self, batch_id: str) -> None:
        """The batch is finished, dead or another replica's now."""
        self._states.pop(batch_id, None)

    def __len__(self) -> int:
        return len(self._states)
