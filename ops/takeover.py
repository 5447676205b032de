"""Human takeover for operators: pause, resume and show one conversation.

Shared by `lull pause`, `lull resume`, `lull conversation` and the admin HTTP API, so both
say the same thing in the same words. The pause itself is common/pause.py's one script.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from lull.common.batch import PLATFORMS
from lull.common.conversation_state import ConversationState, read_conversation
from lull.common.env import Env
from lull.common.keys import Keys
from lull.common.outside_text import cut, printable
from lull.common.pause import Pause, PauseAction, PauseSettings, PauseStore
from lull.common.redis_conn import RedisClient
from lull.common.settings import CommonSettings

DURATION_FORMS = "a number and a unit: 90s, 30m, 2h, 1d"
_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)
# A pause longer than this is a typo (a month): an operator means "until I resume".
MAX_PAUSE_MS = 30 * 86_400_000
CONVERSATION_FORMS = f"platform:account_id:user_id, platform one of {', '.join(PLATFORMS)}"
OPERATOR = "operator"
MAX_CONVERSATION_CHARS = 512
_NOT_IN_IDS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
MAX_BY_CHARS = 200


def parse_duration_ms(text: str) -> int:
    """90s, 30m, 2h, 1d -> milliseconds; ValueError says what is accepted."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: expected {DURATION_FORMS}")
    duration_ms = int(match.group(1)) * _UNITS_MS[match.group(2).lower()]
    if duration_ms <= 0:
        raise ValueError(f"{text!r}: a pause must last longer than 0")
    if duration_ms > MAX_PAUSE_MS:
        raise ValueError(f"{text!r}: at most 30d")
    return duration_ms


def check_conversation(conversation: str) -> str:
    """The conversation key as the processor writes it; ValueError when it cannot be one."""
    platform, account, user = [*conversation.split(":", 2), "", ""][:3]
    # Meta's ids (page, account, phone number, PSID, BSUID) are short and hold no space or
    # control character; a key with one is a typo or a probe, and would be echoed.
    odd = len(conversation) > MAX_CONVERSATION_CHARS or _NOT_IN_IDS.search(conversation)
    if platform not in PLATFORMS or not account or not user or odd:
        raise ValueError(
            f"{cut(conversation, 100)!r} is not a conversation: expected {CONVERSATION_FORMS}"
        )
    return conversation


@dataclass(frozen=True)
class TakeoverSettings:
    """What operator commands need: Redis, keys, and the pause's clock."""

    common: CommonSettings
    pause: PauseSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TakeoverSettings:
        """Read and validate; raises ConfigError naming the first bad variable."""
        source = os.environ if environ is None else environ
        return cls(
            common=CommonSettings.from_env(source), pause=PauseSettings.from_env(Env(source))
        )


class Takeover:
    """Pause, resume and read conversations for an operator or a CRM."""

    def __init__(self, client: RedisClient, keys: Keys, pause: PauseSettings) -> None:
        self._client = client
        self._keys = keys
        self._pauses = PauseStore(client, keys, pause)

    async def pause(
        self, conversation: str, *, for_ms: int = 0, by: str = "", reason: str = OPERATOR
    ) -> Pause:
        """Pause now: for for_ms, or (0) like a human turn (LULL_HUMAN_PAUSE_MS, capped)."""
        return await self._pauses.apply(
            conversation, PauseAction.OPERATOR, reason=reason, by=clean_by(by), for_ms=for_ms
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


def operator_name() -> str:
    """Who runs the command, for the pause's `by`: $LULL_OPERATOR, $USER, or "operator"."""
    return os.environ.get("LULL_OPERATOR") or os.environ.get("USER") or OPERATOR


def render(state: ConversationState) -> str:
    """The human-readable screen of `lull conversation`."""
    now_ms = state.read_at_ms
    lines = [f"conversation  {state.conversation}"]
    if not state.known:
        lines.append("              nothing recorded (never seen, or its state expired)")
    window = state.window
    if window is None:
        lines.append("window        none open")
    else:
        lines.append(
            f"window        open: {window.messages} message(s), {window.bytes} bytes, "
            f"opened {_when(window.opened_at_ms, now_ms)}, "
            f"closes {_when(window.deadline_ms, now_ms)}"
        )
    lines.append(f"seq           {state.seq} closed, {state.delivered} finished by the sender")
    pause = state.pause
    if pause is None:
        lines.append("paused        no")
    else:
        who = f" by {printable(pause.by)}" if pause.by else ""
        hold = ", until the thread is passed back" if pause.hold else ""
        reason = printable(pause.reason)
        lines.append(
            f"paused        yes: {reason}{who}, since {_when(pause.since_ms, now_ms)}, "
            f"until {_when(pause.until_ms, now_ms)}{hold}"
        )
        if pause.human_last_ms:
            lines.append(f"              a human last wrote {_when(pause.human_last_ms, now_ms)}")
    if state.last_user_message_ms is None:
        lines.append("user wrote    unknown")
    else:
        lines.append(
            f"user wrote    {_when(state.last_user_message_ms, now_ms)} "
            f"(from the {printable(state.last_user_message_from)})"
        )
    if not state.outcomes:
        lines.append("last batches  none recorded")
    else:
        # Seqs are clock-based (13 digits) in a conversation 0.2 started, small in 0.1's.
        width = max(len("seq"), *(len(str(r.seq)) for r in state.outcomes))
        lines.append(f"last batches  {'seq':<{width}} outcome      replies  finished")
        lines.extend(
            f"              {r.seq:<{width}} {printable(r.outcome):<12} {r.replies:<8} "
            f"{_when(r.finished_at_ms, now_ms)}"
            for r in state.outcomes
        )
    return "\n".join(lines)


def _when(at_ms: int, now_ms: int) -> str:
    """An instant as UTC time and its distance from now: 2026-12-01 16:02:03Z (5m ago)."""
    stamp = datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    delta_s = (at_ms - now_ms) / 1000
    span = _span(abs(delta_s))
    return f"{stamp} ({span} ago)" if delta_s < 0 else f"{stamp} (in {span})"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{seconds:.0f}s"
