"""The bot hands off: its replies go out first, then the conversation is paused for a human.

A bot's answer may carry `"handoff": {"reason": "..."}` (common/replies.py). Then, in this
order, each step recorded in the batch's SendState so that a retry or a crash repeats none
that is done:

1. The text replies are sent (the usual send loop).
2. Messenger and Instagram, with LULL_HANDOFF_TARGET=page_inbox: thread control is passed
   to the inbox app Meta documents (`POST /{version}/{node}/pass_thread_control`, Handover
   Protocol reference: 263902037430900 for the Page Inbox, 1217981644879628 for the
   Instagram Inbox). It is one more GraphRequest at the end of the batch's requests, so the
   send progress counts it like a reply: a retry never passes twice, nor resends a reply.
   Meta refusing it for good (the thread is another app's, a permission is missing) does
   not dead-letter a batch whose replies went out: it is logged and counted, and the pause
   still happens.
3. The conversation is paused: PauseAction.HOLD when the thread was passed (the inbox owns
   it now, and Meta would refuse lull's sends: only its pass back, an operator's resume or
   LULL_HUMAN_PAUSE_MAX_MS ends the pause), else PauseAction.HANDOFF (the clock of a
   human's turn: LULL_HUMAN_PAUSE_MS after it, or after a human's last message).
4. LULL_HANDOFF_WEBHOOK, when set, is told: a POST signed like the bot call
   (X-Lull-Signature-256 with the account's handler secret, LULL_HANDLER_SECRET without an
   accounts file), with the conversation, the reason and the batch, so a CRM can assign an
   agent. A failure is retried with the send backoff, up to LULL_HANDOFF_WEBHOOK_ATTEMPTS
   in all, then logged and counted; the batch is finished either way. A crash between the
   POST and the finish repeats the POST: X-Lull-Delivery (the batch id) lets the receiver
   drop the copy.

WhatsApp has no thread control: it only pauses and notifies. Every setting here (target,
webhook, its timeout and attempts, the pause times) is the batch's account's: the accounts
file's over the environment's (sender/accounts/sends.py), read when the step is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
import structlog

from lull.common.batch import Batch
from lull.common.env import ConfigError, Env
from lull.common.replies import Handoff
from lull.common.signing import sign
from lull.common.store.deliveries import SendState
from lull.common.store.pauses import PauseAction, PauseSettings, PauseStore
from lull.sender.bot import SIGNATURE_HEADER
from lull.sender.graph.client import GraphClient, GraphError, GraphRequest
from lull.sender.graph.routes import GraphRoutes
from lull.sender.metrics import SenderMetrics

log = structlog.get_logger("lull.sender")

TARGETS: Final = ("none", "page_inbox")
# Meta's Handover Protocol API reference: "To pass control to an inbox set the value to
# 263902037430900 for the Page Inbox or 1217981644879628 for the Instagram Inbox".
INBOX_APP_IDS: Final[Mapping[str, str]] = {
    "messenger": "263902037430900",
    "instagram": "1217981644879628",
}
THREAD_CONTROL_EDGE: Final = "pass_thread_control"
EVENT_HEADER: Final = "X-Lull-Event"
DELIVERY_HEADER: Final = "X-Lull-Delivery"
PAUSED_BY: Final = "bot"
# What the send progress records for the thread control request in place of a message id.
THREAD_PASSED: Final = "thread_control:passed"
THREAD_REFUSED: Final = "thread_control:refused"
# Meta passes `metadata` on to the receiving app; its reference does not state a limit, and
# the Page Inbox shows none of it: the reason is enough, kept short.
METADATA_MAX_CHARS: Final = 1000


def _webhook_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    return value


def webhook_shown(url: str) -> str:
    """A webhook URL fit for a log or an error line: its user info, query and fragment
    (which may carry a secret) masked."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return f"<{len(url)} characters, masked>"
    if not parts.scheme or not host:
        return f"<{len(url)} characters, masked>"  # no URL: it may be a secret pasted in
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    user = "<masked>@" if "@" in parts.netloc else ""
    query = "?<masked>" if parts.query else ""
    fragment = "#<masked>" if parts.fragment else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}{query}{fragment}"


def _webhook_from_env(env: Env) -> str | None:
    """LULL_HANDOFF_WEBHOOK; a bad value is reported with its secret parts masked."""
    name = "LULL_HANDOFF_WEBHOOK"
    value = env.raw(name)
    if value is None:
        return None
    try:
        return _webhook_url(value)
    except ValueError:
        pass  # reported outside the handler: the parse error is no part of the message
    env.report(
        ConfigError.about(name, f"{name}={webhook_shown(value)!r}: an http(s) URL, or unset")
    )
    return None


@dataclass(frozen=True)
class HandoffSettings:
    """How lull hands a conversation to a human when the bot asks."""

    target: str = "none"
    """LULL_HANDOFF_TARGET: page_inbox passes thread control to Meta's inbox (Messenger,
    Instagram); none only pauses."""
    webhook_url: str | None = field(default=None, repr=False)
    """LULL_HANDOFF_WEBHOOK: where a CRM hears of a handoff (None: nobody is told)."""
    webhook_timeout_ms: int = 5000
    """LULL_HANDOFF_WEBHOOK_TIMEOUT_MS: one POST's bound."""
    webhook_attempts: int = 5
    """LULL_HANDOFF_WEBHOOK_ATTEMPTS: POSTs at most, then the failure is logged and counted."""

    @classmethod
    def from_env(cls, env: Env) -> HandoffSettings:
        """Read and validate; a bad value is reported to env with the others."""
        return cls(
            target=env.choice("LULL_HANDOFF_TARGET", "none", TARGETS),
            webhook_url=_webhook_from_env(env),
            webhook_timeout_ms=env.integer(
                "LULL_HANDOFF_WEBHOOK_TIMEOUT_MS", 5000, minimum=10, maximum=120_000
            ),
            webhook_attempts=env.integer(
                "LULL_HANDOFF_WEBHOOK_ATTEMPTS", 5, minimum=1, maximum=100
            ),
        )


@dataclass(frozen=True)
class AccountHandoff:
    """What one account's handoff uses: its handoff settings, its pause times and the secret
    that signs its webhook POSTs (the account's handler secret, as the bot call's)."""

    handoff: HandoffSettings
    pause: PauseSettings
    secret: str = field(repr=False)


def is_thread_control(request: GraphRequest) -> bool:
    """Whether request passes thread control (not a message to the user)."""
    return request.path.endswith("/" + THREAD_CONTROL_EDGE)


def message_requests(requests: list[GraphRequest]) -> list[GraphRequest]:
    """The requests that carried replies (the thread control one is always last)."""
    return [request for request in requests if not is_thread_control(request)]


def thread_control_requests(
    batch: Batch, handoff: Handoff, target: str, version: str, routes: GraphRoutes
) -> list[GraphRequest]:
    """The pass_thread_control call that follows the replies, or none (WhatsApp, no target)."""
    app_id = INBOX_APP_IDS.get(batch.platform)
    if target != "page_inbox" or app_id is None:
        return []
    node = routes.route(batch.platform, batch.account_id).node
    path = f"/{version.strip('/')}/{quote(node, safe='')}/{THREAD_CONTROL_EDGE}"
    payload = {
        "recipient": {"id": batch.user_id},
        "target_app_id": app_id,
        "metadata": (handoff.reason or "handoff")[:METADATA_MAX_CHARS],
    }
    return [GraphRequest(batch.account_id, path, payload, batch.platform)]


class Handoffs:
    """Thread control, pause and CRM notification of the batches whose bot asked for a human."""

    def __init__(
        self,
        account_of: Callable[[str], AccountHandoff],
        *,
        pauses: PauseStore,
        session: aiohttp.ClientSession,
        metrics: SenderMetrics,
        routes: GraphRoutes,
    ) -> None:
        self._account_of = account_of
        """An account's handoff settings, as the accounts file says now (else the
        environment's): read per step, so a handoff made after a reload follows the new."""
        self._routes = routes
        self._pauses = pauses
        self._session = session
        self._metrics = metrics

    def plan(self, batch: Batch, handoff: Handoff | None, state: SendState, version: str) -> None:
        """Record the bot's handoff in the batch's state, and add the Graph request it makes
        after the replies (thread control), if any."""
        if handoff is None or state.requests is None:
            return
        state.handoff = handoff.reason or "handoff"
        target = self._account_of(batch.account_id).handoff.target
        state.requests += thread_control_requests(batch, handoff, target, version, self._routes)

    async def post(self, graph: GraphClient, request: GraphRequest) -> str:
        """Send one request; a thread control Meta refuses for good is counted, not raised."""
        if not is_thread_control(request):
            return await graph.post(request)
        try:
            await graph.post(request)
        except GraphError as exc:
            if exc.kind != "permanent":
                raise
            self._metrics.handoffs.labels(request.platform, "thread_control_refused").inc()
            log.warning(
                "thread control not passed",
                account_id=request.account_id,
                code=exc.code,
                error=exc.message,
            )
            return THREAD_REFUSED
        self._metrics.handoffs.labels(request.platform, "thread_control_passed").inc()
        return THREAD_PASSED

    async def complete(self, batch: Batch, state: SendState) -> int | None:
        """After the sends: pause, then notify. None when done; else the failed notifications
        so far (the caller retries after its backoff for that many failures)."""
        assert state.handoff is not None
        account = self._account_of(batch.account_id)
        if not state.handoff_paused_until_ms:
            passed = THREAD_PASSED in state.message_ids
            action = PauseAction.HOLD if passed else PauseAction.HANDOFF
            pause = await self._pauses.apply(
                batch.conversation,
                action,
                reason=state.handoff,
                by=PAUSED_BY,
                settings=account.pause,
            )
            state.handoff_paused_until_ms = pause.until_ms
        settings = account.handoff
        url = settings.webhook_url
        if url is not None and not state.handoff_notified:
            failure = await self._notify(url, batch, state, account)
            if failure is not None:
                state.handoff_failures += 1
                self._metrics.handoff_notify_failures.inc()
                if state.handoff_failures < settings.webhook_attempts:
                    log.info(
                        "handoff webhook failed, retrying",
                        conversation=batch.conversation,
                        attempt=state.handoff_failures,
                        error=failure,
                    )
                    return state.handoff_failures
                # The replies went out and the pause is set: the batch is finished all the
                # same, and the operator learns from the log and the metric.
                log.error(
                    "handoff webhook gave up",
                    conversation=batch.conversation,
                    seq=batch.seq,
                    attempts=state.handoff_failures,
                    error=failure,
                )
                self._metrics.handoffs.labels(batch.platform, "notify_failed").inc()
                return None
            state.handoff_notified = True
        self._metrics.handoffs.labels(batch.platform, "paused").inc()
        log.info(
            "conversation handed off",
            conversation=batch.conversation,
            seq=batch.seq,
            reason=state.handoff,
            paused_until_ms=state.handoff_paused_until_ms,
        )
        return None

    async def _notify(
        self, url: str, batch: Batch, state: SendState, account: AccountHandoff
    ) -> str | None:
        """POST the handoff to the CRM; None when it answered 2xx, else why not."""
        timeout_ms = account.handoff.webhook_timeout_ms
        body = orjson.dumps(notification(batch, state))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "lull",
            EVENT_HEADER: "handoff",
            DELIVERY_HEADER: batch.batch_id,
        }
        if account.secret:
            headers[SIGNATURE_HEADER] = sign(account.secret, body)
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_ms / 1000),
                allow_redirects=False,
            ) as response:
                status = response.status
                await response.read()
        except TimeoutError:
            return f"no answer within {timeout_ms} ms"
        except (aiohttp.ClientError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if 200 <= status < 300 else f"answered {status}"


def notification(batch: Batch, state: SendState) -> dict[str, Any]:
    """The body a CRM receives at LULL_HANDOFF_WEBHOOK."""
    requests = state.requests or []
    return {
        "event": "handoff",
        "conversation": batch.conversation,
        "platform": batch.platform,
        "account_id": batch.account_id,
        "user_id": batch.user_id,
        "reason": state.handoff,
        "paused_until_ms": state.handoff_paused_until_ms or None,
        "replies_sent": len(message_requests(requests)),
        "thread_control_target_app_id": next(
            (r.payload["target_app_id"] for r in requests if is_thread_control(r)), None
        ),
        "batch": batch.to_dict(),
    }
