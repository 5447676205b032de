"""Pause, resume and read one conversation, for an operator or a CRM.

Shared by `lull pause`, `lull resume`, `lull conversation` (ops/takeover_cli.py) and the
admin HTTP API (ingest/admin_api.py), so both do the same thing. The pause itself is
common/store/pauses.py's one script; what is read, common/store/conversations.py.
"""

from __future__ import annotations

from lull.common.outside_text import printable
from lull.common.pause_times import PauseTimes
from lull.common.redis_conn import RedisClient
from lull.common.store.conversations import ConversationState, read_conversation
from lull.common.store.keys import Keys
from lull.common.store.pauses import Pause, PauseAction, PauseSettings, PauseStore

OPERATOR = "operator"
"""The pause's reason (and `by` when nobody is named) of an operator's pause."""
MAX_PAUSE_MS = 30 * 86_400_000
"""A pause longer than this is a typo (a month): an operator means "until I resume"."""
MAX_BY_CHARS = 200
"""The longest `by` kept with a pause."""


class ConversationControl:
    """Pause, resume and read conversations for an operator or a CRM."""

    def __init__(self, client: RedisClient, keys: Keys, pause: PauseSettings | PauseTimes) -> None:
        """pause: the pause times of every account, or each account's (the accounts file)."""
        self._client = client
        self._keys = keys
        self._times = pause if isinstance(pause, PauseTimes) else PauseTimes(pause)
        self._pauses = PauseStore(client, keys, self._times.environment)

    async def pause(
        self, conversation: str, *, for_ms: int = 0, by: str = "", reason: str = OPERATOR
    ) -> Pause:
        """Pause now: for for_ms, or (0) like a human turn on the conversation's account
        (its human_pause_ms, capped by its human_pause_max_ms; the environment's without an
        accounts file)."""
        return await self._pauses.apply(
            conversation,
            PauseAction.OPERATOR,
            reason=reason,
            by=clean_by(by),
            for_ms=for_ms,
            settings=self._times.of_conversation(conversation),
        )

    async def resume(self, conversation: str, *, by: str = "") -> None:
        """End the pause now; the bot answers the conversation's next batch."""
        await self._pauses.apply(conversation, PauseAction.RESUME, reason="resume", by=clean_by(by))

    async def state(self, conversation: str) -> ConversationState:
        """Everything lull holds about the conversation."""
        return await read_conversation(self._client, self._keys, conversation)


def clean_by(by: str) -> str:
    """Who paused or resumed, as stored: printable (escaped control characters) and at
    most MAX_BY_CHARS; it comes from a CRM or a command line and is shown on terminals."""
    return printable(by.strip())[:MAX_BY_CHARS]
