"""Who is a human: the business side's turns (echoes, handovers, standby) to pauses.

The platform parsers report what the business side did as Turns; this module decides what
each means and applies it with the pause script (common/store/lua/pause.lua):

- A Messenger or Instagram echo is lull's own reply when its `app_id` is LULL_META_APP_ID
  (decided at once), or when its mid is one the sender remembered (Keys.sent_message): the
  only signal without that setting, and a safety net with it (a wrong LULL_META_APP_ID must
  not pause the conversation after every reply of the bot; it is logged once). Any other
  echo (the Page Inbox, app 263902037430900; Meta Business Suite; another app or CRM) is a
  human's turn: the conversation pauses (`human_echo`, by the echo's app id) and the
  message joins the history with role `human`.
- The echo-first race: Meta may deliver the echo of lull's send before the Send API's
  answer (the mid) reached the sender and was remembered. The sender sets a short-lived
  mark (Keys.send_inflight) for the conversation before each Messenger or Instagram send
  and removes it once the mid is remembered. An echo of an unknown mid that finds the mark
  is looked at again a moment later (RetryLater on its inbound entry, whose other events
  were applied and are dropped as duplicates then); once the mark is gone, the mid is
  either remembered (lull's own) or not (a human's). The mark expires on its own after the
  Graph timeout and a margin, so a sender that died mid-send delays the decision, never
  blocks it. With LULL_META_APP_ID set, lull's own echoes are decided by their app id at
  once, so the race only delays a human's echo that comes while lull sends to that user.
- A WhatsApp smb_message_echoes item is always a human's turn (`smb_echo`): Cloud API
  sends are never echoed there.
- Handover: take_thread_control (the thread was taken from lull's app) and
  pass_thread_control to another app hold the conversation (`thread_taken`,
  `thread_passed`, by the new owner) until it is passed back: pass_thread_control to
  lull's app (or, without LULL_META_APP_ID, any pass_thread_control: Meta sends it to the
  app the thread is passed to) releases it. A standby item holds it (`standby`).

A turn applied twice (Meta's redelivery, a retried entry) lengthens a pause from now, no
more; the history item is recorded once (common/store/lua/human_turn.lua).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from lull.common.consumer import RetryLater
from lull.common.events import ECHO, SMB_ECHO, STANDBY, THREAD_PASSED, THREAD_TAKEN, Turn
from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.pauses import Pause, PauseAction, PauseSettings, PauseStore
from lull.common.store.turns import EchoFacts, EchoLook, TurnStore
from lull.processor.metrics import ProcessorMetrics
from lull.processor.settings import TakeoverSettings

log = structlog.get_logger("lull.processor.human_turns")

PAGE_INBOX_APP_ID = "263902037430900"
"""The Page Inbox's app id in handover and echo payloads (Meta's Handover Protocol docs)."""
EARLY_ECHO_RETRY_MS = 100
"""How soon an echo that may be lull's own, not yet remembered, is looked at again."""


@dataclass(frozen=True, slots=True)
class _Step:
    """One decided turn: the pause action to apply, and a history item when a human wrote."""

    turn: Turn
    action: PauseAction
    reason: str
    by: str
    outcome: str
    """The metric's label (lull_processor_turns)."""
    human: bool


_WAIT = _Step(Turn("", "", "", "", 0), PauseAction.HUMAN, "", "", "echo_early", human=False)
"""_decide's marker for an echo that must be looked at again."""


class HumanTurns:
    """Applies the business side's turns of one read: pauses, holds, releases, history."""

    def __init__(
        self,
        client: RedisClient,
        keys: Keys,
        settings: TakeoverSettings,
        metrics: ProcessorMetrics,
        *,
        pause_of: Callable[[str], PauseSettings] | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._settings = settings
        self._metrics = metrics
        self.pauses = PauseStore(client, keys, settings.pause)
        self._pause_of = pause_of
        """An account's pause times (the accounts file); None: settings.pause for all."""
        self._store = TurnStore(client, keys)
        self._warned = False

    async def load_scripts(self) -> None:
        """SCRIPT LOAD the pause and history scripts."""
        await self.pauses.load_scripts()
        await self._store.load_scripts()

    async def apply(self, turns: Sequence[Turn]) -> RetryLater | None:
        """Apply every turn that can be decided now; RetryLater when an echo must be looked
        at again (the entry is handled again then: the rest is idempotent)."""
        if not turns:
            return None
        steps, early = await self._decide(turns)
        for step in steps:
            # The pause first, then the history item: a crash between them leaves the pause.
            turn = step.turn
            pause = await self.pauses.apply(
                turn.conversation,
                step.action,
                reason=step.reason,
                by=step.by,
                settings=None if self._pause_of is None else self._pause_of(turn.account_id),
            )
            self._count(step, pause)
            if step.human:
                await self._record(step.turn)
        if early:
            return RetryLater(EARLY_ECHO_RETRY_MS, "echo of a message lull may be sending")
        return None

    async def _decide(self, turns: Sequence[Turn]) -> tuple[list[_Step], bool]:
        """The steps to apply, and whether an echo had to wait."""
        echoes = [turn for turn in turns if turn.kind in (ECHO, SMB_ECHO)]
        looks = [
            EchoLook(
                turn.conversation,
                turn.mid,
                by_mid=turn.kind == ECHO and not self._ours_by_app_id(turn),
            )
            for turn in echoes
        ]
        facts = iter(await self._store.look(looks))
        steps: list[_Step] = []
        early = False
        for turn in turns:
            if turn.kind not in (ECHO, SMB_ECHO):
                step = self._handover(turn)
            else:
                step = self._echo(turn, next(facts))
                early = early or step is _WAIT
            if step is not None and step is not _WAIT:
                steps.append(step)
        return steps, early

    def _echo(self, turn: Turn, facts: EchoFacts) -> _Step | None:
        """A human's step, None (lull's own, or recorded before), or _WAIT."""
        if turn.kind == SMB_ECHO:
            own: bool | None = False
        elif facts.remembered is None:
            own = True  # its app id is LULL_META_APP_ID
        else:
            own = _own_by_mid(turn, facts)
            if own and turn.app_id and self._settings.meta_app_id and not self._warned:
                # A wrong LULL_META_APP_ID must not silence the bot after each of its own
                # replies: the remembered mid wins, and the operator is told once.
                self._warned = True
                log.warning(
                    "an echo of lull's own reply names another app than LULL_META_APP_ID",
                    app_id=turn.app_id,
                    meta_app_id=self._settings.meta_app_id,
                )
        if own is None:
            self._metrics.turns.labels(turn.platform, "echo_early").inc()
            return _WAIT
        if own:
            self._metrics.turns.labels(turn.platform, "own_echo").inc()
            return None
        if facts.seen:
            # Recorded before: Meta redelivered it, and its pause was applied then.
            return None
        reason = "smb_echo" if turn.kind == SMB_ECHO else "human_echo"
        by = turn.app_id or ("whatsapp_business_app" if turn.kind == SMB_ECHO else "")
        return _Step(turn, PauseAction.HUMAN, reason, by, reason, human=True)

    def _ours_by_app_id(self, turn: Turn) -> bool:
        """Whether the echo's app id is LULL_META_APP_ID: lull's own, decided at once. Any
        other echo is looked up by its mid (a wrong setting must not pause every reply)."""
        return bool(self._settings.meta_app_id) and turn.app_id == self._settings.meta_app_id

    def _handover(self, turn: Turn) -> _Step | None:
        ours = self._settings.meta_app_id
        if turn.kind == STANDBY:
            return _Step(turn, PauseAction.HOLD, "standby", "", "standby", human=False)
        if turn.kind == THREAD_PASSED:
            # Meta sends pass_thread_control to the app the thread is passed to.
            if not ours or turn.app_id == ours:
                return _Step(turn, PauseAction.RELEASE, "", "", "thread_released", human=False)
            return _Step(
                turn, PauseAction.HOLD, "thread_passed", turn.app_id, "thread_passed", human=False
            )
        if turn.kind == THREAD_TAKEN:
            # Meta sends take_thread_control to the app the thread was taken from.
            if ours and turn.app_id == ours:
                return _Step(turn, PauseAction.RELEASE, "", "", "thread_released", human=False)
            return _Step(
                turn, PauseAction.HOLD, "thread_taken", turn.app_id, "thread_taken", human=False
            )
        return None

    def _count(self, step: _Step, pause: Pause) -> None:
        self._metrics.turns.labels(step.turn.platform, step.outcome).inc()
        started = pause.active and pause.since_ms == pause.now_ms
        if started:
            self._metrics.pauses.labels(step.reason).inc()
        log.info(
            "conversation paused" if pause.active else "conversation resumed",
            conversation=step.turn.conversation,
            outcome=step.outcome,
            by=step.by,
            until_ms=pause.until_ms if pause.active else None,
            started=started,
        )

    async def _record(self, turn: Turn) -> None:
        settings = self._settings
        await self._store.record_human(
            turn.conversation,
            mid=turn.mid,
            text=turn.text,
            time_ms=turn.time_ms,
            app_id=turn.app_id,
            keep=settings.history_messages,
            ttl_s=settings.conversation_ttl_s,
        )


def _own_by_mid(turn: Turn, facts: EchoFacts) -> bool | None:
    """Whether the sender remembered sending this mid to this conversation; None while it may
    still be about to remember it (a send to the conversation is in flight)."""
    if facts.remembered:
        return facts.sent is not None and facts.sent.conversation == turn.conversation
    if facts.in_flight:
        return None
    return False
