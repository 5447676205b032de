"""How long lull keeps what it knows about a conversation (LULL_CONVERSATION_TTL_S), and the
check that this outlasts everything that still needs it.

A conversation's state hash and history (common/store/keys.py: conversation_state, history)
expire together this long after the conversation's last emitted or finished batch. Each
service checks the horizons it knows: the processor the message-id dedupe horizon, the
sender how long a batch can be retried. A shorter TTL would let a live batch outlive its
conversation's state: it would then be skipped as finished, never answered.
"""

from __future__ import annotations

from lull.common.env import ConfigError, Env

DAY_S = 86_400
CONVERSATION_TTL_S = 8 * DAY_S
"""Default: the dedupe horizon's default (WhatsApp redelivers for up to 7 days, plus one)."""
MIN_CONVERSATION_TTL_S = 60
MAX_CONVERSATION_TTL_S = 365 * DAY_S
REPLY_WINDOW_MS = 24 * 3600 * 1000
"""Meta's 24-hour reply window: a throttled batch is retried until it closes, then finished
`window_closed` (sender/reply_window.py), so a batch can wait this long beyond its attempts
(one whose replies carry HUMAN_AGENT's tag, up to its 7 days)."""


def conversation_ttl_from_env(env: Env) -> int:
    """LULL_CONVERSATION_TTL_S; refuses 0.1's LULL_HISTORY_TTL_S, which it replaces."""
    old = env.raw("LULL_HISTORY_TTL_S")
    if old is not None:
        env.report(
            ConfigError(
                "LULL_HISTORY_TTL_S",
                old,
                "no longer read: the history now expires with the rest of the conversation's "
                f"state, after LULL_CONVERSATION_TTL_S (default {CONVERSATION_TTL_S}, 8 days); "
                "unset LULL_HISTORY_TTL_S",
            )
        )
    return env.integer(
        "LULL_CONVERSATION_TTL_S",
        CONVERSATION_TTL_S,
        minimum=MIN_CONVERSATION_TTL_S,
        maximum=MAX_CONVERSATION_TTL_S,
    )


def require_outlasts(env: Env, ttl_s: int, horizon_ms: int, horizon: str) -> None:
    """Refuse a conversation TTL shorter than a horizon (horizon: how it is computed, with
    the variables that set it); reported to env with its other problems."""
    if ttl_s * 1000 < horizon_ms:
        at_least_s = -(-horizon_ms // 1000)
        env.report(
            ConfigError(
                "LULL_CONVERSATION_TTL_S",
                str(ttl_s),
                f"at least {at_least_s} s, the {horizon}: a conversation's state must outlive "
                "every batch and message id that still needs it",
            )
        )


def sender_retry_horizon_ms(
    *,
    send_max_attempts: int,
    send_backoff_max_ms: int,
    max_deliveries: int,
    claim_idle_ms: int,
    handoff_attempts: int = 0,
    handoff_timeout_ms: int = 0,
) -> int:
    """The longest a batch can stay unfinished after it was emitted: every send attempt at
    the longest backoff, throttles waited out to the end of the 24-hour reply window, every
    delivery of the entry left to go idle before a claim, and every handoff notification
    (LULL_HANDOFF_WEBHOOK) timing out and waiting the longest backoff."""
    return (
        send_max_attempts * send_backoff_max_ms
        + REPLY_WINDOW_MS
        + max_deliveries * claim_idle_ms
        + handoff_attempts * (send_backoff_max_ms + handoff_timeout_ms)
    )


SENDER_HORIZON = (
    "sender's retry horizon (LULL_SEND_MAX_ATTEMPTS x LULL_SEND_BACKOFF_MAX_MS + 24 h of "
    "throttle waits + LULL_MAX_DELIVERIES x LULL_CLAIM_IDLE_MS + LULL_HANDOFF_WEBHOOK_ATTEMPTS "
    "x (LULL_SEND_BACKOFF_MAX_MS + LULL_HANDOFF_WEBHOOK_TIMEOUT_MS) when LULL_HANDOFF_WEBHOOK "
    "is set)"
)
DEDUPE_HORIZON = "dedupe horizon (LULL_DEDUPE_TTL_S)"
