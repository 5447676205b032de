"""What the user sees besides replies: read receipts, typing, reply pacing; per account.

One frozen PresenceSettings is read from the environment, and one per account of the
accounts file (docs/accounts.md); `Presence.presence_of` hands out an account's (a
coexistence number may want no read receipts: on WhatsApp a read receipt also marks the
chat read for the human in the WhatsApp Business app).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lull.common.env import Env

READ_RECEIPTS: Final = ("batch", "arrival", "off")
# Meta: WhatsApp's typing indicator "will be dismissed once you respond, or after 25
# seconds" (Typing indicators); Messenger's "Typing indicators are automatically turned off
# after 20 seconds, or when the bot sends a message" (Sender Actions). Each is refreshed a
# few seconds before it would end, so the user never sees a gap.
TYPING_REFRESH_MS: Final = {"whatsapp": 20_000, "messenger": 15_000, "instagram": 15_000}
# A gap between two sends holds a delivery slot and delays the rest of the answer: a person
# typing a long text would take minutes, a user waits for no more than this between two.
REPLY_GAP_MAX_MS: Final = 30_000


# A deferred answer usually comes within a minute (a flow's steps); a help desk's takes
# longer, and the user is better told nothing than shown typing for a quarter of an hour.
DEFAULT_DEFER_TYPING_MS = 60_000
MAX_DEFER_TYPING_MS = 600_000


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    """Read receipts, typing indicator and pacing of one account's replies."""

    read_receipts: str = "batch"
    """batch: read when the sender picks a batch up for the bot; arrival: each message as
    the processor windows it (sender/presence/arrivals.py); off: never."""
    typing: bool = True
    """Typing shown from pick-up until the reply, and between paced sends."""
    typing_refresh_ms: int | None = None
    """How often typing is shown again while the bot works; None: per platform (above)."""
    after_ms: int = 0
    """Show read and typing only once the bot has worked this long: a bot that answers
    sooner costs no presence call (0: at pick-up)."""
    reply_delay_ms: int = 0
    """Pause before each send after the first of a batch (replies and text chunks)."""
    reply_delay_per_char_ms: int = 0
    """Added to the pause per character of the text about to go out (a typing person)."""
    defer_typing_ms: int = DEFAULT_DEFER_TYPING_MS
    """After a bot deferred its answer (202): typing stays on this long at most, until its
    replies come through the send API (sender/presence/deferred_typing.py); 0: off at once."""

    @property
    def reads(self) -> bool:
        """Whether the user sees their messages read."""
        return self.read_receipts != "off"

    def refresh_ms(self, platform: str) -> int:
        """How often typing is shown again on platform while the bot works."""
        if self.typing_refresh_ms is not None:
            return self.typing_refresh_ms
        return TYPING_REFRESH_MS.get(platform, min(TYPING_REFRESH_MS.values()))

    def gap_ms(self, text_chars: int) -> int:
        """The pause before a send of text_chars characters that follows another send."""
        gap = self.reply_delay_ms + self.reply_delay_per_char_ms * text_chars
        return min(gap, REPLY_GAP_MAX_MS)

    @classmethod
    def from_env(cls, env: Env) -> PresenceSettings:
        """LULL_READ_RECEIPTS, LULL_TYPING, LULL_TYPING_REFRESH_MS, LULL_PRESENCE_AFTER_MS,
        LULL_REPLY_DELAY_MS, LULL_REPLY_DELAY_PER_CHAR_MS, LULL_DEFER_TYPING_MS."""
        read_receipts = env.choice("LULL_READ_RECEIPTS", "batch", READ_RECEIPTS)
        refresh = env.raw("LULL_TYPING_REFRESH_MS")
        return cls(
            read_receipts=read_receipts,
            typing=env.flag("LULL_TYPING", True),
            typing_refresh_ms=None
            if refresh is None
            else env.integer("LULL_TYPING_REFRESH_MS", 0, minimum=10, maximum=25_000),
            after_ms=env.integer("LULL_PRESENCE_AFTER_MS", 0, minimum=0, maximum=20_000),
            reply_delay_ms=env.integer(
                "LULL_REPLY_DELAY_MS", 0, minimum=0, maximum=REPLY_GAP_MAX_MS
            ),
            reply_delay_per_char_ms=env.integer(
                "LULL_REPLY_DELAY_PER_CHAR_MS", 0, minimum=0, maximum=1000
            ),
            defer_typing_ms=env.integer(
                "LULL_DEFER_TYPING_MS",
                DEFAULT_DEFER_TYPING_MS,
                minimum=0,
                maximum=MAX_DEFER_TYPING_MS,
            ),
        )
