"""Read receipts and typing while the bot works, and the pause between paced sends.

What Meta documents:
- WhatsApp (Typing indicators): `{"messaging_product": "whatsapp", "status": "read",
  "message_id": <wamid>, "typing_indicator": {"type": "text"}}` to `/{phone-number-id}/
  messages` marks the message (and the ones before it) read and shows typing until the
  reply, or 25 s. There is no typing without the read: with read receipts off, WhatsApp
  users see no typing either.
- Messenger and Instagram (Sender Actions): `{"recipient": {"id"}, "sender_action": ...}`
  with `mark_seen`, `typing_on` or `typing_off`, one action per call and nothing else in
  it; typing ends after 20 s or with the bot's message.

Presence is best-effort by contract: it runs beside the bot call and the sends, never
before them; it is never retried; a failure is counted and forgotten; and it yields to
replies under the account's rate limit (sender/rates/rate.py): it takes a slot only when one
is free at once or at most PRESENCE_HORIZON_MS ahead, and is dropped otherwise.

Who calls what (sender/deliver.py): `start` once the sender has decided to call the bot for
a batch (after the per-user admission, never for a replay or a `none` handler); the bot
calls `Showing.reached` once the batch is on its way, and nothing is shown before (an
unreachable bot shows the user nothing); `ended` when the bot call is over, `stop` when the
attempt is (`typing_off=True` when no reply follows: the batch is finished without one, or
retried later); and `pace` before each send; `arrived` for LULL_READ_RECEIPTS=arrival
(sender/presence/arrivals.py).

Once per batch: the read is shown on the first attempt that reaches the bot; `start` is told
whether it was (`read=False`), and `on_read` records it in the batch's send state, which the
retry saves to Redis anyway, so a retry on any replica knows (no Redis command of its own).
Typing is shown per attempt, while its bot call is in flight.

A pause (human takeover) turns presence off with `start(show=False)` or, for a pause that
begins while the bot works, with the `should_show` check, asked before each refresh (False
ends that batch's presence).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from prometheus_client import Counter

from lull.common.batch import Batch
from lull.common.conversation import Conversation
from lull.common.redis_conn import REDIS_FAILURES
from lull.common.store.keys import Keys
from lull.common.store.rate_limits import Limiters
from lull.sender.accounts.sends import AccountSends
from lull.sender.graph.client import GraphError, GraphRequest
from lull.sender.graph.payload import messages_path
from lull.sender.graph.routes import GraphRoutes
from lull.sender.presence.batch import ActionPoster, BatchedActions
from lull.sender.presence.settings import PresenceSettings
from lull.sender.rates.rate import RateLimiter
from lull.sender.settings import SenderSettings

log = structlog.get_logger("lull.sender")

ShowCheck = Callable[[str], Awaitable[bool]]
"""Whether a conversation (`platform:account:user`) may be shown read and typing now
(False while it is paused)."""

# Metric labels of `action`.
READ: Final = "read"
"""WhatsApp: status read, no typing."""
READ_TYPING: Final = "read_typing"
"""WhatsApp: status read with a typing indicator, in one call."""
MARK_SEEN: Final = "mark_seen"
TYPING_ON: Final = "typing_on"
TYPING_OFF: Final = "typing_off"
SENDER_ACTIONS: Final = frozenset({MARK_SEEN, TYPING_ON, TYPING_OFF})
# A presence call takes a free slot of the account's limit, or one at most this far ahead:
# the next slot at 80/s (12.6 ms), so Messenger's typing_on right after mark_seen is not
# dropped by an idle limiter spacing them. Replies reserve up to 250 ms ahead
# (rate_gate.RATE_HORIZON_MS): under a backlog the next slots are theirs, and presence is
# dropped. A reply that comes while the limiter is idle waits at most this long behind one.
PRESENCE_HORIZON_MS: Final = 25


@dataclass(frozen=True, slots=True)
class Target:
    """Whom presence is shown to, and the message a WhatsApp read receipt names."""

    platform: str
    account_id: str
    user_id: str
    mid: str

    @property
    def conversation(self) -> str:
        """`platform:account_id:user_id`."""
        return Conversation(self.platform, self.account_id, self.user_id).key

    @classmethod
    def of(cls, batch: Batch) -> Target:
        """The batch's user, and its last message (marking it read marks the earlier ones)."""
        mid = batch.messages[-1].mid if batch.messages else ""
        return cls(batch.platform, batch.account_id, batch.user_id, mid)


def presence_request(
    target: Target, action: str, version: str, routes: GraphRoutes
) -> GraphRequest | None:
    """The Graph call that shows `action` to the target; None when it cannot be shown (a
    WhatsApp target without a message id to mark read)."""
    path = messages_path(target.platform, target.account_id, version, routes)
    payload: dict[str, Any]
    if target.platform == "whatsapp":
        if not target.mid or action not in (READ, READ_TYPING):
            return None
        payload = {"messaging_product": "whatsapp", "status": "read", "message_id": target.mid}
        if action == READ_TYPING:
            payload["typing_indicator"] = {"type": "text"}
    else:
        if action not in SENDER_ACTIONS:
            return None
        payload = {"recipient": {"id": target.user_id}, "sender_action": action}
    return GraphRequest(target.account_id, path, payload, target.platform)


def first_actions(platform: str, presence: PresenceSettings, *, read: bool = True) -> list[str]:
    """What the user is shown once a batch is on its way to the bot, in order (with
    `arrival`, the messages were marked read already; WhatsApp's typing marks them again).
    read=False: an earlier attempt showed the batch read."""
    at_pick_up = read and presence.read_receipts == "batch"
    if platform == "whatsapp":
        if presence.typing and presence.reads:
            return [READ_TYPING]
        return [READ] if at_pick_up else []
    actions = [MARK_SEEN] if at_pick_up else []
    return actions + ([TYPING_ON] if presence.typing else [])


READS: Final = frozenset({READ, READ_TYPING, MARK_SEEN})
"""The actions that mark the user's messages read."""


def arrival_action(platform: str) -> str:
    """The call that marks one arriving message read."""
    return READ if platform == "whatsapp" else MARK_SEEN


def typing_action(platform: str, presence: PresenceSettings) -> str | None:
    """The call that shows typing (again) on platform, None when typing is not shown."""
    if not presence.typing:
        return None
    if platform == "whatsapp":
        return READ_TYPING if presence.reads else None
    return TYPING_ON


@dataclass
class Showing:
    """Presence of one batch while its bot works; stop() ends it."""

    presence: Presence | None
    target: Target
    task: asyncio.Task[None] | None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    typed: bool = False
    """A typing call went out (or was on its way) for this batch."""
    on_read: Callable[[], None] | None = None
    """Told when a call that marks the batch read goes out."""
    _moved: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by reached() and ended(): what the task waits for before its first call."""
    _reached: bool = False

    def reached(self) -> None:
        """The batch is on its way to the bot: presence may begin (bot.Reached)."""
        self._reached = True
        self._moved.set()

    def ended(self) -> None:
        """The bot call is over: no presence call starts after this (one in flight ends on
        its own). Called before the attempt saves its state, so `on_read` is in it."""
        self.stopped.set()
        self._moved.set()

    async def until_reached(self) -> bool:
        """Whether the bot was reached before the call ended."""
        await self._moved.wait()
        return self._reached and not self.stopped.is_set()

    def stop(self, *, typing_off: bool) -> None:
        """Stop showing typing. typing_off: no reply follows now (the batch is finished
        without one, or retried later), so Messenger and Instagram are told typing is off
        (after any call still in flight, so it cannot land after the off); else the reply
        ends it."""
        # Not cancelled: a call in flight ends on its own (cancelling it would not take it
        # back from Meta, and would close a pooled connection the replies then reopen); the
        # task sees `stopped` before any further call.
        self.ended()
        if self.task is None or self.presence is None:
            return
        presence = self.presence
        settings = presence.presence_of(self.target.account_id)
        if typing_off and self.target.platform != "whatsapp" and settings.typing:
            presence.spawn(presence.typing_off_after(self))


@dataclass
class Presence:
    """Shows batches read and typing; one per sender replica."""

    settings: SenderSettings
    keys: Keys
    limiter: RateLimiter
    graph: ActionPoster
    """A GraphClient, or BatchedActions over one (an account's calls of a moment in one
    batch request, sender/presence/batch.py)."""
    counter: Counter
    """lull_sender_presence_total{action, outcome}: sent, dropped_rate, failed."""
    should_show: ShowCheck | None = None
    """Asked before every presence call; None: always (the pause hook)."""
    sends: AccountSends | None = None
    """Each account's settings (the accounts file); None: the settings' for every one."""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def presence_of(self, account_id: str) -> PresenceSettings:
        """An account's presence settings: the accounts file's, else the environment's."""
        if self.sends is None:
            return self.settings.presence_for(account_id)
        return self.sends.of(account_id).presence

    def start(
        self,
        batch: Batch,
        *,
        show: bool = True,
        read: bool = True,
        on_read: Callable[[], None] | None = None,
    ) -> Showing:
        """Show the batch read (unless read=False: shown already) and typing beside the bot
        call that follows at once, from when it reaches the bot (Showing.reached)."""
        presence = self.presence_of(batch.account_id)
        actions = first_actions(batch.platform, presence, read=read) if show else []
        if not actions:
            return Showing(None, Target.of(batch), None)
        showing = Showing(self, Target.of(batch), None, on_read=on_read)
        showing.task = self.spawn(self._show(showing, presence, actions))
        return showing

    async def pace(
        self, batch: Batch, requests: Sequence[GraphRequest], index: int, *, show: bool = True
    ) -> None:
        """Before send `index` of a batch: after a send, pause as a person would, with typing
        shown meanwhile (beside the pause, never lengthening it)."""
        if index == 0:
            return
        presence = self.presence_of(batch.account_id)
        gap_ms = presence.gap_ms(len(_text(requests[index].payload)))
        if gap_ms <= 0:
            return
        action = typing_action(batch.platform, presence) if show else None
        if action is not None:
            self.spawn(self._shown(Target.of(batch), action))
        await asyncio.sleep(gap_ms / 1000)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run presence work in the background; close() ends what is left of it."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def running(self) -> int:
        """Presence tasks not yet ended (tests)."""
        return len(self._tasks)

    async def idle(self) -> None:
        """Until the presence work running now has ended (tests: nothing left in flight)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel presence work still running: none of it is worth waiting for."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if isinstance(self.graph, BatchedActions):
            await self.graph.close()

    async def typing_off_after(self, showing: Showing) -> None:
        """typing_off once the batch's presence has ended (its call in flight included),
        if it showed typing at all."""
        if showing.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await showing.task
        if showing.typed:
            await self._once(showing.target, TYPING_OFF)

    def typing_off(self, batch: Batch | Target, *, show: bool = True) -> None:
        """typing_off for a batch finished without its replies after its bot answered (a
        pause won the same moment, a deferred answer did not come): on Messenger and
        Instagram, when typing is on."""
        target = batch if isinstance(batch, Target) else Target.of(batch)
        presence = self.presence_of(target.account_id)
        if show and target.platform != "whatsapp" and typing_action(target.platform, presence):
            self.spawn(self._typing_off(target))

    async def show_typing(self, target: Target, action: str) -> bool:
        """One typing call (sender/presence/deferred_typing.py), unless a human has the conversation
        now: then False."""
        return await self._once(target, action, ask=True)

    async def arrived(self, target: Target) -> None:
        """LULL_READ_RECEIPTS=arrival: mark one message read as it arrives (best-effort),
        unless a human has the conversation (on a coexistence number a read receipt marks the
        chat read for the agent in the WhatsApp Business app too). An account whose read
        receipts are not arrival (the accounts file) is left to its own."""
        if self.presence_of(target.account_id).read_receipts != "arrival":
            return
        await self._once(target, arrival_action(target.platform), ask=True)

    async def _typing_off(self, target: Target) -> None:
        # Not asked: the pause that ended the batch is what typing_off is for.
        await self._once(target, TYPING_OFF)

    async def _shown(self, target: Target, action: str) -> None:
        await self._once(target, action, ask=True)

    async def _show(self, showing: Showing, presence: PresenceSettings, actions: list[str]) -> None:
        target = showing.target
        if presence.after_ms > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(showing.stopped.wait(), presence.after_ms / 1000)
        # Nothing before the batch is on its way: a bot that cannot be reached is retried,
        # and each retry would show the user a read and a typing that no answer follows.
        if not await showing.until_reached():
            return
        for action in actions:
            if showing.stopped.is_set():
                return
            showing.typed = showing.typed or action in (TYPING_ON, READ_TYPING)
            if action in READS and showing.on_read is not None:
                showing.on_read()
            # After LULL_PRESENCE_AFTER_MS a pause may have begun since the sender read it.
            if not await self._once(target, action, ask=presence.after_ms > 0):
                return
        again = typing_action(target.platform, presence)
        if again is None:
            return
        refresh_s = presence.refresh_ms(target.platform) / 1000
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(showing.stopped.wait(), refresh_s)
            if showing.stopped.is_set() or not await self._once(target, again, ask=True):
                return

    async def _once(self, target: Target, action: str, *, ask: bool = False) -> bool:
        """One presence call, within the account's limit if a slot is free now; never raises
        (a failure is counted, and the reply goes on). False: the conversation is not to be
        shown anything now (should_show), so the batch's presence ends. should_show is asked
        only when ask: the first calls follow the sender's own pause check by milliseconds,
        and asking there would cost a round trip per call."""
        if self.sends is None:
            version, routes = self.settings.graph_version, self.settings.graph_routes
        else:
            graph = self.sends.of(target.account_id).graph
            version, routes = graph.version, graph.routes
        request = presence_request(target, action, version, routes)
        if request is None:
            return True
        conversation = target.conversation
        try:
            if ask and self.should_show is not None and not await self.should_show(conversation):
                return False
            sends = self.sends
            rate = (
                self.settings.rate_global
                if sends is None
                else sends.of(target.account_id).rates.rate_global
            )
            if rate is not None:
                key = Limiters(self.keys).account(request.account_id)
                grant = await self.limiter.acquire(key, rate, horizon_ms=PRESENCE_HORIZON_MS)
                if not grant.taken:
                    self.counter.labels(action, "dropped_rate").inc()
                    return True
                if grant.wait_ms > 0:
                    await asyncio.sleep(grant.wait_ms / 1000)
                if await self.limiter.use(key, rate) > 0:
                    # Late after a stall, with the second full: dropped, not sent in a bunch.
                    self.counter.labels(action, "dropped_rate").inc()
                    return True
            await self.graph.post_action(request)
        except (GraphError, *REDIS_FAILURES) as exc:
            self.counter.labels(action, "failed").inc()
            log.debug("presence failed", action=action, conversation=conversation, error=str(exc))
            return True
        self.counter.labels(action, "sent").inc()
        log.debug("presence", action=action, conversation=conversation)
        return True


def _text(payload: dict[str, Any]) -> str:
    """The text a send carries (Messenger/Instagram message, WhatsApp text or button body)."""
    message = payload.get("message")
    if isinstance(message, dict) and isinstance(message.get("text"), str):
        return str(message["text"])
    for holder in (payload.get("text"), (payload.get("interactive") or {}).get("body")):
        if isinstance(holder, dict):
            text = holder.get("body", holder.get("text"))
            if isinstance(text, str):
                return text
    return ""
