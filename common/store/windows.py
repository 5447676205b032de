"""A conversation's open window, as Redis holds it: the apply, close and flush scripts
(lua/window_apply.lua, window_close.lua, window_flush.lua, with the layout and the emit in
lua/window_layout.lua and window_emit.lua), called in pipelines. The processor decides
what to apply and when to close (processor/inbound.py, closer.py); the rules a window
follows are its settings (WindowRules)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT

from lull.common.events import Event
from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.legacy import LegacyKeys
from lull.common.store.scripts import CLOCK_PRELUDE, LIFE_PRELUDES, LuaScript, is_noscript

# Statuses returned by window_apply.lua.
DUPLICATE, ADDED, OPENED, EDITED, REMOVED, LATE_UNSEND = range(6)
# A script blocks Redis while it runs: ~30 µs an event that opens a window, more for one
# that joins a window near its caps (the window, up to LULL_MAX_BYTES, is read and written
# whole), and a full window's emit when one fills. Cap one call at a few ms: at most
# MAX_EVENTS_PER_CALL events and MAX_BYTES_PER_CALL of their bytes, fewer events when the
# windows may be larger than the default 64 KiB (events x max bytes stays the same).
MAX_EVENTS_PER_CALL = 64
MAX_BYTES_PER_CALL = 64 * 1024
WINDOW_BYTES_PER_CALL = MAX_EVENTS_PER_CALL * 64 * 1024
STATUS_NAMES = ("duplicate", "added", "opened", "edited", "removed", "late_unsend")
# The window layout and a batch's emit, shared by apply and close (after LIFE_PRELUDES).
WINDOW_PRELUDES = ("window_layout", "window_emit")


class WindowRules(Protocol):
    """How windows open, grow and close: the processor's settings (processor/settings.py)."""

    @property
    def mode(self) -> str: ...
    @property
    def window_ms(self) -> int: ...
    @property
    def max_wait_ms(self) -> int: ...
    @property
    def max_messages(self) -> int: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def grace_ms(self) -> int: ...
    @property
    def max_lateness_ms(self) -> int: ...
    @property
    def max_skew_ms(self) -> int: ...
    @property
    def flush_on(self) -> frozenset[str]: ...
    @property
    def dedupe_ttl_s(self) -> int: ...
    @property
    def conversation_ttl_s(self) -> int: ...


@dataclass(frozen=True, slots=True)
class WindowShape:
    """One account's window settings, the ones each event carries into the apply: built
    once per account (common/accounts.py), so that an event's are a lookup."""

    mode: str
    window_ms: int
    max_wait_ms: int
    max_messages: int
    max_bytes: int
    flush_on: frozenset[str]
    args: tuple[EncodableT, ...] = field(init=False, compare=False, repr=False)
    """mode, window ms, max wait ms, max messages, max bytes: the apply's per-event ARGV."""

    def __post_init__(self) -> None:
        args = (self.mode, self.window_ms, self.max_wait_ms, self.max_messages, self.max_bytes)
        object.__setattr__(self, "args", args)

    @classmethod
    def of(cls, rules: WindowRules) -> WindowShape:
        """The shape part of a service's window settings."""
        return cls(
            rules.mode, rules.window_ms, rules.max_wait_ms, rules.max_messages,
            rules.max_bytes, rules.flush_on,
        )  # fmt: skip


def encoded_fields(event: Event) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The JSON of an event's mid, kind, text, attachments and raw, as the scripts store them;
    raises orjson.JSONEncodeError when one cannot be written."""
    return (
        orjson.dumps(event.mid),
        orjson.dumps(event.kind),
        orjson.dumps(event.text),
        orjson.dumps(event.attachments),
        orjson.dumps(event.raw),
    )


def _nested(message: dict[str, Any]) -> dict[str, Any]:
    """message as deep as in the deepest thing the sender writes: the handoff notice's
    "batch" (sender/handoff.py), the batch, its "messages" array (common/batch.py)."""
    return {"batch": {"messages": [message]}}


# The bytes _nested adds around a message's raw and attachments.
_NESTED_OVERHEAD = len(orjson.dumps(_nested({"raw": None, "attachments": None}))) - 2 * len(b"null")


def message_size(fields: tuple[bytes, ...]) -> int:
    """The bytes LULL_MAX_BYTES counts of one message (window_emit.lua: its JSON fields)."""
    return sum(len(f) for f in fields)


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
class ApplyResult:
    """What applying a read did: one Applied per event, in order, and the full windows the
    applies closed (a message that would pass a cap opens the next window)."""

    now_ms: int
    applied: list[Applied]
    closed: list[Closed]


@dataclass(frozen=True, slots=True)
class CloseResult:
    """One close call on one shard."""

    now_ms: int
    next_deadline_ms: int | None
    open_windows: int
    closed: list[Closed]


class WindowStore:
    """Applies events to windows and closes due windows; all state lives in Redis."""

    def __init__(
        self,
        client: RedisClient,
        keys: Keys,
        settings: WindowRules,
        shape_of: Callable[[Event], WindowShape] | None = None,
    ) -> None:
        """shape_of: an event's window settings (its account's); settings' for every event
        when None. settings gives the rest (lateness, skew, grace, lifetimes)."""
        self._client = client
        self._keys = keys
        self._settings = settings
        shape = WindowShape.of(settings)
        self._shape_of = shape_of or (lambda _event: shape)
        preludes = (*LIFE_PRELUDES, *WINDOW_PRELUDES)
        self._apply = LuaScript.read("window_apply", preludes=preludes)
        self._close = LuaScript.read("window_close", preludes=preludes)
        self._flush = LuaScript.read("window_flush", preludes=(*CLOCK_PRELUDE, "window_layout"))
        s = settings
        self._apply_head: tuple[EncodableT, ...] = (
            s.max_lateness_ms, s.max_skew_ms, s.dedupe_ttl_s,
        )  # fmt: skip

    def unbatchable(self, event: Event) -> str | None:
        """Why event cannot go in a batch (None: it can): the sender must be able to encode
        every batch, and no batch holds more than LULL_MAX_BYTES."""
        try:
            # orjson reads 1024 levels of nesting but writes only 254: an item must still be
            # written where the sender puts it, four levels down. The same bytes give the
            # size of raw and attachments (orjson's output is compact and deterministic).
            nested = orjson.dumps(_nested({"raw": event.raw, "attachments": event.attachments}))
        except orjson.JSONEncodeError as exc:
            return f"cannot be written in a batch: {exc}"
        size = (
            len(nested)
            - _NESTED_OVERHEAD
            + sum(len(orjson.dumps(value)) for value in (event.mid, event.kind, event.text))
        )
        max_bytes = self._shape_of(event).max_bytes
        if size > max_bytes:
            return f"{size} bytes, more than LULL_MAX_BYTES ({max_bytes})"
        return None

    async def load_scripts(self) -> None:
        """Register every script with Redis (SCRIPT LOAD is idempotent)."""
        for script in (self._apply, self._close, self._flush):
            await script.load(self._client)

    async def apply(self, events: Sequence[tuple[Event, int]]) -> list[Applied]:
        """Apply (event, received_at_ms) pairs in one pipeline; results in the same order."""
        return (await self.apply_closing(events)).applied

    async def apply_closing(self, events: Sequence[tuple[Event, int]]) -> ApplyResult:
        """Apply (event, received_at_ms) pairs; also the full windows the applies closed."""
        if not events:
            return ApplyResult(0, [], [])
        try:
            return await self._apply_pipelined(events)
        except NoScriptError:
            # Redis restarted and forgot the script; applying again is safe (dedupe by mid).
            await self.load_scripts()
            return await self._apply_pipelined(events)

    def _calls(
        self,
        events: Sequence[tuple[Event, int]],
        sizes: Sequence[int],
        shapes: Sequence[WindowShape],
    ) -> list[tuple[int, list[int]]]:
        """Event indexes grouped per shard, in order, cut into calls of bounded events and
        bytes; and of bounded window bytes: the max bytes of the events' windows (each
        account's own), which a call may read and write whole, add up to at most
        WINDOW_BYTES_PER_CALL."""
        keys = self._keys
        by_shard: dict[int, list[int]] = {}
        for index, (event, _) in enumerate(events):
            by_shard.setdefault(keys.shard_of(event.conversation), []).append(index)
        calls: list[tuple[int, list[int]]] = []
        for shard, indexes in by_shard.items():
            call: list[int] = []
            call_bytes = window_bytes = 0
            for index in indexes:
                size, max_bytes = sizes[index], shapes[index].max_bytes
                if call and (
                    len(call) >= MAX_EVENTS_PER_CALL
                    or call_bytes + size > MAX_BYTES_PER_CALL
                    or window_bytes + max_bytes > WINDOW_BYTES_PER_CALL
                ):
                    calls.append((shard, call))
                    call, call_bytes, window_bytes = [], 0, 0
                call.append(index)
                call_bytes += size
                window_bytes += max_bytes
            calls.append((shard, call))
        return calls

    async def _apply_pipelined(self, events: Sequence[tuple[Event, int]]) -> ApplyResult:
        # One script call per shard for the whole read: per-command client overhead, not
        # Redis, bounded the apply rate when every event was a command of its own. A large
        # read is cut into calls of a few ms each: a script blocks every other client.
        keys, settings, shape_of = self._keys, self._settings, self._shape_of
        encoded = [encoded_fields(event) for event, _ in events]
        shapes = [shape_of(event) for event, _ in events]
        pipe = self._client.pipeline(transaction=False)
        order: list[list[int]] = []
        for shard, indexes in self._calls(events, [message_size(f) for f in encoded], shapes):
            call_keys: list[str] = [
                keys.due(shard), keys.outbound(shard),
                *LegacyKeys.of(keys, shard).moved(),
            ]  # fmt: skip
            args: list[EncodableT] = [
                *self._apply_head,
                keys.conversation_state_prefix(shard), keys.history_prefix(shard),
                settings.conversation_ttl_s, keys.pause_prefix(shard),
            ]  # fmt: skip
            for index in indexes:
                event, received_at_ms = events[index]
                conversation = event.conversation
                call_keys += (keys.conversation(conversation), keys.seen(conversation))
                mid, kind, text, attachments, raw = encoded[index]
                shape = shapes[index]
                args += shape.args
                args += (
                    conversation,
                    mid,
                    b"" if event.target_mid is None else orjson.dumps(event.target_mid),
                    event.kind,
                    kind,
                    event.event_time_ms,
                    received_at_ms,
                    text,
                    attachments,
                    raw,
                    1 if event.kind in shape.flush_on else 0,
                )
            # execute_command, not pipe.evalsha: a cluster pipeline refuses the latter.
            pipe.execute_command(*self._apply.command(call_keys, args))
            order.append(indexes)
        results = await pipe.execute(raise_on_error=False)
        applied: list[Applied | None] = [None] * len(events)
        closed: list[Closed] = []
        now_ms = 0
        for indexes, result in zip(order, results, strict=True):
            if isinstance(result, ResponseError):
                raise NoScriptError(str(result)) if is_noscript(result) else result
            call_now_ms, statuses, call_closed = result
            now_ms = max(now_ms, int(call_now_ms))
            for n, index in enumerate(indexes):
                applied[index] = Applied(int(statuses[2 * n]), int(statuses[2 * n + 1]))
            closed += (_closed(c) for c in call_closed)
        return ApplyResult(now_ms, [a for a in applied if a is not None], closed)

    async def close_due(self, shard: int, limit: int, *, everything: bool = False) -> CloseResult:
        """Close up to limit due windows of a shard (every open one when everything)."""
        keys = self._keys
        settings = self._settings
        args = (
            keys.conversation_prefix(shard), settings.grace_ms, limit,
            settings.dedupe_ttl_s, 1 if everything else 0,
            keys.conversation_state_prefix(shard), keys.history_prefix(shard),
            settings.conversation_ttl_s, keys.pause_prefix(shard), keys.seen_prefix(shard),
        )  # fmt: skip
        legacy = LegacyKeys.of(keys, shard).moved()
        raw = await self._close.call(
            self._client, (keys.due(shard), keys.outbound(shard), *legacy), args
        )
        now_ms, next_deadline, open_windows, *closed = raw
        return CloseResult(
            now_ms=int(now_ms),
            next_deadline_ms=None if int(next_deadline) < 0 else int(next_deadline),
            open_windows=int(open_windows),
            closed=[_closed(c) for c in closed],
        )

    async def flush(self, conversation: str) -> bool:
        """Make one conversation's open window due now; False when none is open."""
        keys = self._keys
        due = keys.due(keys.shard_of(conversation))
        found = await self._flush.call(
            self._client, (due, keys.conversation(conversation)), (conversation,)
        )
        return bool(found)


def _closed(c: list[Any]) -> Closed:
    """One closed window as the apply and close scripts return it."""
    return Closed(c[0].decode(), int(c[1]), int(c[2]), c[3].decode(), int(c[4]), c[5] == 1)
