"""Sender settings: handler, Graph API, rate limits, retries, supersede, history."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from lull.common.access_tokens import load_tokens
from lull.common.accounts import Accounts
from lull.common.env import ConfigError, Env
from lull.common.lifetime import (
    SENDER_HORIZON,
    conversation_ttl_from_env,
    require_outlasts,
    sender_retry_horizon_ms,
)
from lull.common.settings import CommonSettings, GroupSettings, common_from_env, group_from_env
from lull.common.store.pauses import PauseSettings
from lull.sender.accounts.settings import (
    AccountSend,
    graph_routes_from_env,
    handler_from_env,
    rates_from_env,
    send_accounts,
)
from lull.sender.graph.routes import (
    GraphRoutes,
)
from lull.sender.handoff import HandoffSettings
from lull.sender.media.settings import MediaSettings
from lull.sender.presence.settings import PresenceSettings
from lull.sender.rates.rate import RATE_FORMAT, Rate, parse_rate
from lull.sender.sends.bounds import DEFAULT_MAX_REPLY_PARTS, DEFAULT_MAX_SENDS_PER_BATCH


@dataclass(frozen=True)
class SenderSettings:
    """Everything the sender reads from the environment, validated."""

    common: CommonSettings
    group: GroupSettings
    handler: str
    handler_secret: str = field(repr=False)
    handler_timeout_ms: int
    graph_routes: GraphRoutes
    graph_version: str
    graph_timeout_ms: int
    access_tokens: dict[str, str] = field(repr=False)
    rate_global: Rate | None
    rate_per_user: Rate | None
    send_rate_per_user: Rate | None
    """Sends (messages) per conversation: WhatsApp's pair rate limit (131056) counts
    messages, not batches, so a bot answering with several replies needs this too."""
    max_reply_parts: int
    """Send API messages one reply may become (sender/sends/bounds.py)."""
    max_sends_per_batch: int
    """Send API messages all replies of one batch may become together."""
    send_max_attempts: int
    send_backoff_base_ms: int
    send_backoff_max_ms: int
    supersede: bool
    history_messages: int
    conversation_ttl_s: int
    """How long a conversation's state and history outlive its last batch (common/lifetime.py)."""
    sent_ids_ttl_s: int
    concurrency: int
    metrics_host: str
    metrics_port: int
    pause: PauseSettings
    handoff: HandoffSettings
    outcomes_kept: int
    """LULL_OUTCOMES_KEPT: finished batches remembered per conversation (lull conversation)."""
    presence: PresenceSettings
    presence_batch_ms: int
    send_batch: bool
    """LULL_SEND_BATCH: an account's Messenger/Instagram replies of one event-loop turn in one
    Graph batch request (sender/graph/batched_sends.py). Off unless asked for: not yet tried
    against Meta's own Graph API, and a sender killed mid-batch resends a whole batch."""
    """LULL_PRESENCE_BATCH_MS: how long an account's first presence call waits for others to
    share one Graph batch request (sender/presence/batch.py); 0: each call alone."""
    media: MediaSettings
    """Media links, the media server, inline media, transcription (sender/media/)."""
    accounts: Accounts[AccountSend] | None = None
    """Each account's handler (LULL_ACCOUNTS); None: the environment's for all."""

    def presence_for(self, account_id: str) -> PresenceSettings:
        """The environment's presence settings (the accounts file's per account:
        Presence.presence_of)."""
        del account_id
        return self.presence

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SenderSettings:
        """Read and validate; raises ConfigError naming every bad variable. A python:
        handler is imported here, so that one that cannot be is a configuration error."""
        env = Env(os.environ if environ is None else environ, collect=True)
        settings = cls._read(env, os.environ if environ is None else environ)
        env.check()
        return settings

    @classmethod
    def _read(cls, env: Env, environ: Mapping[str, str]) -> SenderSettings:
        accounts = send_accounts(env, environ)
        tokens_text = env.raw("LULL_ACCESS_TOKENS")
        try:
            tokens = load_tokens(tokens_text) if tokens_text else {}
        except ValueError as exc:
            problem = str(exc)
            tokens = {}
            env.report(ConfigError("LULL_ACCESS_TOKENS", tokens_text, problem, secret=True))
        settings = cls(
            common=common_from_env(env),
            group=group_from_env(env),
            # Not required when the accounts file's "*" table names a handler for everyone.
            handler=handler_from_env(
                env, required=accounts is None or not accounts.default.bot.handler
            ),
            handler_secret=env.string("LULL_HANDLER_SECRET", ""),
            handler_timeout_ms=env.integer(
                "LULL_HANDLER_TIMEOUT_MS", 30_000, minimum=10, maximum=600_000
            ),
            graph_routes=graph_routes_from_env(env),
            graph_version=env.string("LULL_GRAPH_API_VERSION", "v23.0"),
            graph_timeout_ms=env.integer(
                "LULL_GRAPH_TIMEOUT_MS", 10_000, minimum=10, maximum=120_000
            ),
            access_tokens=tokens,
            # Read here, in the order problems are reported in.
            rate_global=(rates := rates_from_env(env)).rate_global,
            rate_per_user=rates.rate_per_user,
            # WhatsApp's pair rate limit: about one message every 6 s to one user, with short
            # bursts borrowed from later (Throughput, "pair rate limit"; error 131056).
            send_rate_per_user=env.parsed(
                "LULL_SEND_RATE_PER_USER", parse_rate("10/1m:10"), parse_rate, RATE_FORMAT
            ),
            max_reply_parts=env.integer(
                "LULL_MAX_REPLY_PARTS", DEFAULT_MAX_REPLY_PARTS, minimum=1, maximum=100
            ),
            max_sends_per_batch=env.integer(
                "LULL_MAX_SENDS_PER_BATCH", DEFAULT_MAX_SENDS_PER_BATCH, minimum=1, maximum=1000
            ),
            send_max_attempts=env.integer("LULL_SEND_MAX_ATTEMPTS", 8, minimum=1, maximum=100),
            send_backoff_base_ms=env.integer(
                "LULL_SEND_BACKOFF_BASE_MS", 500, minimum=1, maximum=600_000
            ),
            send_backoff_max_ms=env.integer(
                "LULL_SEND_BACKOFF_MAX_MS", 60_000, minimum=1, maximum=3_600_000
            ),
            supersede=env.flag("LULL_SUPERSEDE", False),
            history_messages=env.integer("LULL_HISTORY_MESSAGES", 20, minimum=0, maximum=1000),
            conversation_ttl_s=conversation_ttl_from_env(env),
            sent_ids_ttl_s=env.integer(
                "LULL_SENT_MESSAGE_TTL_S", 86_400, minimum=0, maximum=30 * 86_400
            ),
            concurrency=env.integer("LULL_SENDER_CONCURRENCY", 64, minimum=1, maximum=10_000),
            metrics_host=env.string("LULL_METRICS_HOST", "127.0.0.1"),
            metrics_port=env.integer("LULL_SENDER_METRICS_PORT", 9102, minimum=0, maximum=65535),
            pause=PauseSettings.from_env(env),
            handoff=HandoffSettings.from_env(env),
            outcomes_kept=env.integer("LULL_OUTCOMES_KEPT", 10, minimum=0, maximum=1000),
            presence=PresenceSettings.from_env(env),
            presence_batch_ms=env.integer("LULL_PRESENCE_BATCH_MS", 5, minimum=0, maximum=1000),
            send_batch=env.flag("LULL_SEND_BATCH", False),
            media=MediaSettings.from_env(env),
            accounts=accounts,
        )
        media = settings.media
        if media.links and media.port == settings.metrics_port:
            problem = "must differ from LULL_SENDER_METRICS_PORT (media links are for the bot)"
            env.report(ConfigError("LULL_MEDIA_PORT", str(media.port), problem))
        horizon_ms = max(
            sender_retry_horizon_ms(
                send_max_attempts=settings.send_max_attempts,
                send_backoff_max_ms=settings.send_backoff_max_ms,
                max_deliveries=settings.group.max_deliveries,
                claim_idle_ms=settings.group.claim_idle_ms,
                handoff_attempts=handoff.webhook_attempts if handoff.webhook_url else 0,
                handoff_timeout_ms=handoff.webhook_timeout_ms,
            )
            # The longest handoff any account may make (the accounts file's own webhooks).
            for handoff in _handoffs(settings)
        )
        horizon_names = (
            "LULL_CONVERSATION_TTL_S", "LULL_SEND_MAX_ATTEMPTS", "LULL_SEND_BACKOFF_MAX_MS",
            "LULL_MAX_DELIVERIES", "LULL_CLAIM_IDLE_MS", "LULL_HANDOFF_WEBHOOK_ATTEMPTS",
            "LULL_HANDOFF_WEBHOOK_TIMEOUT_MS",
        )  # fmt: skip
        if env.ok(*horizon_names):
            require_outlasts(env, settings.conversation_ttl_s, horizon_ms, SENDER_HORIZON)
        return settings


def _handoffs(settings: SenderSettings) -> list[HandoffSettings]:
    """The environment's handoff settings and every account's."""
    accounts = settings.accounts
    if accounts is None:
        return [settings.handoff]
    return [
        settings.handoff,
        accounts.default.handoff,
        *(a.handoff for a in accounts.by_id.values()),
    ]
