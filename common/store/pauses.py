"""Human takeover: a conversation is paused while a human has it (see common/store/lua/pause.lua).

Every pause decision is one atomic script on the Redis clock. The pause key exists exactly
while the conversation is paused, so the window close (stamping the batches it emits) and
the sender (before it calls the bot and before its first send) ask with one EXISTS.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lull.common.env import Env
from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.scripts import CLOCK_PRELUDE, LuaScript

DEFAULT_QUIET_MS = 30 * 60 * 1000
DEFAULT_CAP_MS = 24 * 3600 * 1000


class PauseAction(StrEnum):
    """What happened to the conversation (pause.lua's header says what each does)."""

    HUMAN = "human"
    HANDOFF = "handoff"
    HOLD = "hold"
    OPERATOR = "operator"
    RELEASE = "release"
    RESUME = "resume"


@dataclass(frozen=True)
class PauseSettings:
    """How long a human keeps a conversation; shared by every service that pauses."""

    quiet_ms: int
    """LULL_HUMAN_PAUSE_MS: the pause ends this long after the human's last message."""
    cap_ms: int
    """LULL_HUMAN_PAUSE_MAX_MS: and at the latest this long after it began."""

    @classmethod
    def from_env(cls, env: Env) -> PauseSettings:
        """LULL_HUMAN_PAUSE_MS (default 30 min) and LULL_HUMAN_PAUSE_MAX_MS (default 24 h)."""
        quiet_ms = env.integer("LULL_HUMAN_PAUSE_MS", DEFAULT_QUIET_MS, minimum=1)
        cap_ms = env.integer("LULL_HUMAN_PAUSE_MAX_MS", DEFAULT_CAP_MS, minimum=1)
        return cls(quiet_ms=quiet_ms, cap_ms=cap_ms)


@dataclass(frozen=True)
class Pause:
    """A conversation's pause as the script left it; `active` is False after it ended."""

    since_ms: int
    until_ms: int
    human_last_ms: int
    """When a human last wrote (Redis clock), 0 when none did (an operator or a handoff)."""
    reason: str
    by: str
    hold: bool
    """Another app owns the thread: only a pass back, a resume or the cap ends it."""
    now_ms: int
    """The Redis clock when the script ran."""

    @property
    def active(self) -> bool:
        """Whether the conversation is paused after this step."""
        return self.until_ms > self.now_ms

    @classmethod
    def from_reply(cls, reply: list[object]) -> Pause:
        """The script's reply."""
        since, until, human_last, reason, by, hold, now = reply
        return cls(
            since_ms=_int(since),
            until_ms=_int(until),
            human_last_ms=_int(human_last),
            reason=_text(reason),
            by=_text(by),
            hold=_int(hold) == 1,
            now_ms=_int(now),
        )

    @classmethod
    def from_hash(cls, fields: dict[bytes, bytes], ttl_ms: int) -> Pause | None:
        """From HGETALL and PTTL of the pause key (sent together); None when not paused."""
        if not fields or ttl_ms <= 0:
            return None
        until_ms = _int(fields.get(b"until_ms"))
        pause = cls(
            since_ms=_int(fields.get(b"since_ms")),
            until_ms=until_ms,
            human_last_ms=_int(fields.get(b"human_last_ms")),
            reason=_text(fields.get(b"reason")),
            by=_text(fields.get(b"by")),
            hold=_int(fields.get(b"hold")) == 1,
            now_ms=until_ms - ttl_ms,
        )
        return pause if pause.active else None


class PauseStore:
    """Pauses, resumes and reads conversations' pauses."""

    def __init__(self, client: RedisClient, keys: Keys, settings: PauseSettings) -> None:
        self._client = client
        self._keys = keys
        self._settings = settings
        self._script = LuaScript.read("pause", preludes=CLOCK_PRELUDE)

    async def load_scripts(self) -> None:
        """SCRIPT LOAD the pause script."""
        await self._script.load(self._client)

    async def apply(
        self,
        conversation: str,
        action: PauseAction,
        *,
        reason: str = "",
        by: str = "",
        for_ms: int = 0,
        settings: PauseSettings | None = None,
    ) -> Pause:
        """One pause step for one conversation; returns the pause after it. settings: the
        conversation's account's pause times (the accounts file), else the store's."""
        settings = settings or self._settings
        reply = await self._script.call(
            self._client,
            (self._keys.pause(conversation),),
            (action.value, settings.quiet_ms, settings.cap_ms, reason or action.value, by, for_ms),
        )
        return Pause.from_reply(reply)

    async def read(self, conversation: str) -> Pause | None:
        """The conversation's pause, None when it is not paused."""
        key = self._keys.pause(conversation)
        # PTTL rather than TIME: both commands name the key, so a cluster pipeline sends
        # them to its node; the key expires at until_ms, so until_ms - PTTL is Redis's now.
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.pttl(key)
        fields, ttl_ms = await pipe.execute()
        return Pause.from_hash(fields, int(ttl_ms))


def _int(value: object) -> int:
    if isinstance(value, bytes):
        value = value.decode()
    return int(value) if isinstance(value, (int, str)) and str(value) else 0


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
