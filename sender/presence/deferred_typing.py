"""Typing while a deferred answer is on its way (a bot answered 202, or `{"defer": true}`):
shown again every refresh until the conversation's next send API message is sent by this
replica, or LULL_DEFER_TYPING_MS has passed (then typing is turned off on Messenger and
Instagram; WhatsApp's ends by itself). Best-effort like all presence: per replica (a message
another replica sends ends it on the user's screen anyway, a sent message clears typing),
never retried, never in the way of a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from lull.common.batch import Batch
from lull.sender.presence.calls import Presence, Target, typing_action


@dataclass
class DeferredTyping:
    """The conversations whose bot deferred its answer, with typing kept on."""

    presence: Presence
    _waiting: dict[str, asyncio.Event] = field(default_factory=dict)

    def start(self, batch: Batch) -> None:
        """Keep typing on for a batch whose answer was deferred."""
        settings = self.presence.presence_of(batch.account_id)
        action = typing_action(batch.platform, settings)
        if action is None or settings.defer_typing_ms <= 0:
            return
        target = Target.of(batch)
        # A newer deferral of the same conversation takes over its typing.
        self.replied(target.conversation)
        answered = asyncio.Event()
        self._waiting[target.conversation] = answered
        until = time.monotonic() + settings.defer_typing_ms / 1000
        refresh_s = settings.refresh_ms(batch.platform) / 1000
        self.presence.spawn(self._keep(target, action, answered, until, refresh_s))

    def replied(self, conversation: str) -> None:
        """The conversation's replies are being sent: its deferred typing ends."""
        answered = self._waiting.pop(conversation, None)
        if answered is not None:
            answered.set()

    @property
    def waiting(self) -> int:
        """Conversations with deferred typing on (tests, metrics)."""
        return len(self._waiting)

    async def _keep(
        self, target: Target, action: str, answered: asyncio.Event, until: float, refresh_s: float
    ) -> None:
        try:
            # At once: a bot that answered 202 quickly left no time for the call's typing.
            while await self.presence.show_typing(target, action):
                left_s = until - time.monotonic()
                if left_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(answered.wait(), min(refresh_s, left_s))
                if answered.is_set():
                    return
                if time.monotonic() >= until:
                    break
            else:
                return  # a human has the conversation now
            # Nobody answered in time: say so on Messenger and Instagram.
            if target.platform != "whatsapp":
                self.presence.typing_off(target)
        finally:
            if self._waiting.get(target.conversation) is answered:
                del self._waiting[target.conversation]
