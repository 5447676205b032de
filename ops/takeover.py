"""Human takeover for operators: the words of `lull pause`, `lull resume`, `lull conversation`.

What the commands do is common/conversation_control.py's (the admin HTTP API does the same);
here are their settings, the duration they take and the screen they print.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from lull.common.accounts import Accounts
from lull.common.conversation_control import MAX_PAUSE_MS, OPERATOR
from lull.common.env import Env
from lull.common.outside_text import printable
from lull.common.pause_times import pause_accounts
from lull.common.settings import CommonSettings
from lull.common.store.conversations import ConversationState
from lull.common.store.pauses import PauseSettings

DURATION_FORMS = "a number and a unit: 90s, 30m, 2h, 1d"
_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_OUTCOME_WIDTH = 12
"""The outcome column's least width (its header and 0.2's outcomes fit)."""
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)


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


@dataclass(frozen=True)
class OperatorSettings:
    """What operator commands need: Redis, keys, and the pause's clock."""

    common: CommonSettings
    pause: PauseSettings
    accounts: Accounts[PauseSettings] | None = None
    """Each account's pause times (LULL_ACCOUNTS, as the services read it); None: the
    environment's for all."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Read and validate; raises ConfigError naming the bad variables (the accounts
        file's problems with their file:line)."""
        source = os.environ if environ is None else environ
        common = CommonSettings.from_env(source)
        env = Env(source, collect=True)
        settings = cls(
            common=common, pause=PauseSettings.from_env(env), accounts=pause_accounts(env, source)
        )
        env.check()
        return settings


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
    lines.extend(_reply_window(state))
    lines.extend(_last_batches(state))
    return "\n".join(lines)


def _reply_window(state: ConversationState) -> list[str]:
    """Whether Meta's 24-hour window to answer the user is open (none when unknown)."""
    ends_ms, now_ms = state.reply_window_ends_at_ms, state.read_at_ms
    if ends_ms is None:
        return []
    if ends_ms > now_ms:
        return [f"reply window  open until {_when(ends_ms, now_ms)}"]
    return [
        f"reply window  closed {_when(ends_ms, now_ms)}: a reply goes out only with a tag "
        "(Messenger, Instagram) or as a template (WhatsApp)"
    ]


def _last_batches(state: ConversationState) -> list[str]:
    """The last finished batches, one line each, under a header."""
    if not state.outcomes:
        return ["last batches  none recorded"]
    now_ms = state.read_at_ms
    # Seqs are clock-based (13 digits) in a conversation 0.2 started, small in 0.1's.
    width = max(len("seq"), *(len(str(r.seq)) for r in state.outcomes))
    outcomes = [printable(r.outcome) for r in state.outcomes]
    # window_closed is longer than the column of 0.2's outcomes: it widens it.
    o_width = max(_OUTCOME_WIDTH, *(len(o) for o in outcomes))
    lines = [f"last batches  {'seq':<{width}} {'outcome':<{o_width}} replies  finished"]
    lines.extend(
        f"              {r.seq:<{width}} {outcome:<{o_width}} {r.replies:<8} "
        f"{_when(r.finished_at_ms, now_ms)}"
        for r, outcome in zip(state.outcomes, outcomes, strict=True)
    )
    return lines


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
