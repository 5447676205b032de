"""The window store: the apply, close and flush scripts, called in pipelines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT

from lull.common.events import Event
from lull.common.keys import Keys
from lull.common.lua import LIFE_PRELUDE, LuaScript, is_noscript
from lull.common.redis_conn import RedisClient
from lull.processor.settings import WindowSettings

# Statuses returned by window_apply.lua.
DUPLICATE, ADDED, OPENED, EDITED, REMOVED, LATE_UNSEND = range(6)
# A script blocks Redis while it runs (~30 µs an event): cap one call at a few ms.
MAX_EVENTS_PER_CALL = 200
STATUS_NAMES = ("duplicate", "added", "opened", "edited", "removed", "late_unsend")


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one event did, and the window's deadline afterwards (Redis clock, ms)."""

    status: int
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class Closed:
    """One window the close script reset; messages == 0 means emptied by unsends."""

    conversation: str
    deadline_ms: int
    messages: int
    reason: str
    seq: int
    paused: bool = False
    """The batch was stamped paused: a human had the conversation when it closed."""


@dataclass(frozen=True, slots=True)
class CloseResult:
    """One close call on one shard."""

    now_ms: int
    next_deadline_ms: int | None
    open_windows: int
    closed: list[Closed]


class WindowStore:
    """Applies events to windows and closes due windows; all state lives in Redis."""

    def __init__(self, client: RedisClient, keys: Keys, settings: WindowSettings) -> None:
        self._client = client
        self._keys = keys
        self._settings = settings
        self._apply = LuaScript.read("processor", "window_apply")
        self._close = LuaScript.read("processor", "window_close", prelude=LIFE_PRELUDE)
        self._flush = LuaScript.read("processor", "window_flush")
        s = settings
        self._apply_head: tuple[EncodableT, ...] = (
            s.mode, s.window_ms, s.max_wait_ms, s.max_messages, s.max_bytes,
            s.max_lateness_ms, s.max_skew_ms, s.dedupe_ttl_s,
        )  # fmt: skip

    async def load_scripts(self) -> None:
        """Register every script with Redis (SCRIPT LOAD is idempotent)."""
        for script in (self._apply, self._close, self._flush):
            await script.load(self._client)

    async def apply(self, events: Sequence[tuple[Event, int]]) -> list[Applied]:
        """Apply (event, received_at_ms) pairs in one pipeline; results in the same order."""
        if not events:
            return []
        try:
            return await self._apply_pipelined(events)
        except NoScriptError:
            # Redis restarted and forgot the script; applying again is safe (dedupe by mid).
            await self.load_scripts()
            return await self._apply_pipelined(events)

    async def _apply_pipelined(self, events: Sequence[tuple[Event, int]]) -> list[Applied]:
        # One script call per shard for the whole read: per-command client overhead, not
        # Redis, bounded the apply rate when every event was a command of its own.
        keys, flush_on = self._keys, self._settings.flush_on
        by_shard: dict[int, list[int]] = {}
        for index, (event, _) in enumerate(events):
            by_shard.setdefault(keys.shard_of(event.conversation), []).append(index)
        calls = [
            (shard, indexes[start : start + MAX_EVENTS_PER_CALL])
            for shard, indexes in by_shard.items()
            for start in range(0, len(indexes), MAX_EVENTS_PER_CALL)
        ]
        pipe = self._client.pipeline(transaction=False)
        order: list[list[int]] = []
        for shard, indexes in calls:
            call_keys: list[str] = [keys.due(shard)]
            args: list[EncodableT] = [*self._apply_head]
            for index in indexes:
                event, received_at_ms = events[index]
                conversation = event.conversation
                call_keys.append(keys.conversation(conversation))
                args += (
                    conversation,
                    orjson.dumps(event.mid),
                    b"" if event.target_mid is None else orjson.dumps(event.target_mid),
                    event.kind,
                    orjson.dumps(event.kind),
                    event.event_time_ms,
                    received_at_ms,
                    orjson.dumps(event.text),
                    orjson.dumps(event.attachments),
                    orjson.dumps(event.raw),
                    1 if event.kind in flush_on else 0,
                )
            # execute_command, not pipe.evalsha: a cluster pipeline refuses the latter.
            pipe.execute_command(*self._apply.command(call_keys, args))
            order.append(indexes)
        results = await pipe.execute(raise_on_error=False)
        applied: list[Applied | None] = [None] * len(events)
        for indexes, result in zip(order, results, strict=True):
            if isinstance(result, ResponseError):
                raise NoScriptError(str(result)) if is_noscript(result) else result
            for n, index in enumerate(indexes):
                applied[index] = Applied(int(result[2 * n]), int(result[2 * n + 1]))
        return [a for a in applied if a is not None]

    async def close_due(self, shard: int, limit: int, *, everything: bool = False) -> CloseResult:
        """Close up to limit due windows of a shard (every open one when everything)."""
        keys = self._keys
        settings = self._settings
        args = (
            keys.conversation_prefix(shard), settings.grace_ms, limit,
            settings.dedupe_ttl_s, 1 if everything else 0,
            keys.conversation_state_prefix(shard), keys.history_prefix(shard),
            settings.conversation_ttl_s, keys.pause_prefix(shard),
        )  # fmt: skip
        legacy = (keys.seq(shard), keys.delivered(shard), keys.dead_seqs(shard))
        raw = await self._close.call(
            self._client, (keys.due(shard), keys.outbound(shard), *legacy), args
        )
        now_ms, next_deadline, open_windows, *closed = raw
        return CloseResult(
            now_ms=int(now_ms),
            next_deadline_ms=None if int(next_deadline) < 0 else int(next_deadline),
            open_windows=int(open_windows),
            closed=[
                Closed(c[0].decode(), int(c[1]), int(c[2]), c[3].decode(), int(c[4]), c[5] == 1)
                for c in closed
            ],
        )

    async def flush(self, conversation: str) -> bool:
        """Make one conversation's open window due now; False when none is open."""
        keys = self._keys
        due = keys.due(keys.shard_of(conversation))
        found = await self._flush.call(
            self._client, (due, keys.conversation(conversation)), (conversation,)
        )
        return bool(found)
