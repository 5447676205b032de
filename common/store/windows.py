"""A conversation's open window, as Redis holds it: the apply, close and flush scripts
(lua/window_apply.lua, window_close.lua, window_flush.lua, with the layout and the emit in
lua/window_layout.lua and window_emit.lua), called in pipelines. The processor decides
what to apply and when to close (processor/inbound.py, closer.py); the rules a window
follows are its settings (WindowRules)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT

from lull.common.conversation import Conversation
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
    settings: bytes = field(init=False, compare=False, repr=False)
    """All of the above as a window stores them (lua/window_layout.lua): the apply's ARGV."""

    def __post_init__(self) -> None:
        flush_on = "".join(f"{kind}," for kind in sorted(self.flush_on))
        settings = (
            f"\x1c{self.mode} {self.window_ms} {self.max_wait_ms} {self.max_messages} "
            f"{self.max_bytes} ,{flush_on}"
        )
        object.__setattr__(self, "settings", settings.encode())

    @classmethod
    def of(cls, rules: WindowRules) -> WindowShape:
        """The shape part of a service's window settings."""
        return cls(
            rules.mode, rules.window_ms, rules.max_wait_ms, rules.max_messages,
            rules.max_bytes, rules.flush_on,
        )  # fmt: skip


def _nested(message: dict[str, Any]) -> dict[str, Any]:
    """message as deep as in the deepest thing the sender writes: the handoff notice's
    "batch" (sender/handoff.py), the batch, its "messages" array (common/batch.py)."""
    return {"batch": {"messages": [message]}}


# What _nested puts before and after a message's one field (orjson's output is compact and
# deterministic: the field's own JSON is what lies between).
_BEFORE = len(b'{"batch":{"messages":[{"x":')
_AFTER = len(b"}]}}")
_EMPTY_LIST = b"[]"


def _nested_json(value: Any) -> bytes:
    """value's JSON, as orjson writes it alone; raises orjson.JSONEncodeError when it could
    not be written where the sender puts it: orjson reads 1024 levels of nesting but writes
    only 254, and an item is written four levels down."""
    return orjson.dumps(_nested({"x": value}))[_BEFORE:-_AFTER]


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


def message_size(fields: tuple[bytes, ...]) -> int:
    """The bytes LULL_MAX_BYTES counts of one message (window_emit.lua: its JSON fields)."""
    return sum(len(f) for f in fields)


class Ready(NamedTuple):
    """One event encoded for the apply script, once (WindowStore.prepare)."""

    shard: int
    size: int
    """The bytes LULL_MAX_BYTES counts (window_emit.lua: its JSON fields)."""
    max_bytes: int
    """Its account's LULL_MAX_BYTES: how much of a window an apply may read and write."""
    keys: tuple[str, str]
    """Its window and its seen set."""
    args: tuple[EncodableT, ...]
    """Its values of the apply's ARGV (lua/window_apply.lua)."""


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

    def prepare(self, event: Event, received_at_ms: int) -> Ready | str:
        """event encoded for the apply, or why it cannot go in a batch: the sender must be
        able to encode every batch, and no batch holds more than LULL_MAX_BYTES."""
        shape = self._shape_of(event)
        try:
            ready = self._ready(event, received_at_ms, shape)
        except orjson.JSONEncodeError as exc:
            return f"cannot be written in a batch: {exc}"
        if ready.size > shape.max_bytes:
            return f"{ready.size} bytes, more than LULL_MAX_BYTES ({shape.max_bytes})"
        return ready

    def unbatchable(self, event: Event) -> str | None:
        """Why event cannot go in a batch (None: it can); see prepare."""
        prepared = self.prepare(event, 0)
        return prepared if isinstance(prepared, str) else None

    def _ready(self, event: Event, received_at_ms: int, shape: WindowShape) -> Ready:
        """event's keys and ARGV, each field encoded once; raises orjson.JSONEncodeError."""
        keys = self._keys
        conversation = Conversation(event.platform, event.account_id, event.user_id).key
        shard = keys.shard_of(conversation)
        mid = orjson.dumps(event.mid)
        kind = orjson.dumps(event.kind)
        text = orjson.dumps(event.text)
        # Most messages carry none: the same bytes without an encode.
        attachments = _EMPTY_LIST if event.attachments == [] else _nested_json(event.attachments)
        raw = _nested_json(event.raw)
        target = b"" if event.target_mid is None else orjson.dumps(event.target_mid)
        window_key = keys.conversation_prefix(shard) + conversation
        seen_key = keys.seen_prefix(shard) + conversation
        return Ready(
            shard,
            len(mid) + len(kind) + len(text) + len(attachments) + len(raw),
            shape.max_bytes,
            (window_key, seen_key),
            (
                shape.settings, conversation, mid, target, event.kind, kind,
                event.event_time_ms, received_at_ms, text, attachments, raw,
            ),
        )  # fmt: skip

    async def load_scripts(self) -> None:
        """Register every script with Redis (SCRIPT LOAD is idempotent)."""
        for script in (self._apply, self._close, self._flush):
            await script.load(self._client)

    async def apply(self, events: Sequence[tuple[Event, int]]) -> list[Applied]:
        """Apply (event, received_at_ms) pairs in one pipeline; results in the same order."""
        return (await self.apply_closing(events)).applied

    async def apply_closing(self, events: Sequence[tuple[Event, int]]) -> ApplyResult:
        """Apply (event, received_at_ms) pairs; also the full windows the applies closed.
        Raises orjson.JSONEncodeError for an event that cannot be written (see prepare)."""
        shape_of = self._shape_of
        return await self.apply_ready([self._ready(e, at, shape_of(e)) for e, at in events])

    async def apply_ready(self, ready: Sequence[Ready]) -> ApplyResult:
        """Apply prepared events (prepare) in one pipeline; results in the same order."""
        if not ready:
            return ApplyResult(0, [], [])
        try:
            return await self._apply_pipelined(ready)
        except NoScriptError:
            # Redis restarted and forgot the script; applying again is safe (dedupe by mid).
            await self.load_scripts()
            return await self._apply_pipelined(ready)

    @staticmethod
    def _calls(ready: Sequence[Ready]) -> list[tuple[int, list[int]]]:
        """Event indexes grouped per shard, in order, cut into calls of bounded events and
        bytes; and of bounded window bytes: the max bytes of the events' windows (each
        account's own), which a call may read and write whole, add up to at most
        WINDOW_BYTES_PER_CALL."""
        by_shard: dict[int, list[int]] = {}
        for index, r in enumerate(ready):
            by_shard.setdefault(r.shard, []).append(index)
        calls: list[tuple[int, list[int]]] = []
        for shard, indexes in by_shard.items():
            call: list[int] = []
            call_bytes = window_bytes = 0
            for index in indexes:
                r = ready[index]
                size, max_bytes = r.size, r.max_bytes
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

    async def _apply_pipelined(self, ready: Sequence[Ready]) -> ApplyResult:
        # One script call per shard for the whole read: per-command client overhead, not
        # Redis, bounded the apply rate when every event was a command of its own. A large
        # read is cut into calls of a few ms each: a script blocks every other client.
        keys, settings = self._keys, self._settings
        pipe = self._client.pipeline(transaction=False)
        order: list[list[int]] = []
        for shard, indexes in self._calls(ready):
            call_keys: list[EncodableT] = [
                keys.due(shard), keys.outbound(shard),
                *LegacyKeys.of(keys, shard).moved(),
            ]  # fmt: skip
            args: list[EncodableT] = [
                *self._apply_head,
                keys.conversation_state_prefix(shard), keys.history_prefix(shard),
                settings.conversation_ttl_s, keys.pause_prefix(shard),
            ]  # fmt: skip
            for index in indexes:
                r = ready[index]
                call_keys += r.keys
                args += r.args
            # execute_command, not pipe.evalsha: a cluster pipeline refuses the latter.
            pipe.execute_command(*self._apply.command(call_keys, args))
            order.append(indexes)
        results = await pipe.execute(raise_on_error=False)
        applied: list[Applied | None] = [None] * len(ready)
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
