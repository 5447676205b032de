"""Processor settings: window shape, caps, clamps, dedupe, consumer group, metrics port."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lull.common.accounts import Accounts, accounts_in
from lull.common.env import ConfigError, Env
from lull.common.events import FLOW_REPLY, POSTBACK, QUICK_REPLY
from lull.common.lifetime import DEDUPE_HORIZON, conversation_ttl_from_env, require_outlasts
from lull.common.settings import CommonSettings, GroupSettings, common_from_env, group_from_env
from lull.common.store.pauses import PauseSettings
from lull.common.store.windows import WindowShape

WINDOW_MODES = ("sliding", "fixed")
DAY_S = 86_400
# Meta retries an unacknowledged WhatsApp webhook "for up to 7 days" (WhatsApp Cloud API,
# Webhooks overview): a day beyond that, so a last redelivery is still known.
DEDUPE_TTL_S = 8 * DAY_S
# The largest caps of a window: it is read and written whole by each apply, and emitted in
# one script call.
MAX_MESSAGES_CAP = 1_000
MAX_BYTES_CAP = 1024**2


# Kinds 0.1 gave WhatsApp taps, still accepted in LULL_FLUSH_ON: each stands for the kinds
# those taps have now.
_OLD_KINDS = {
    "interactive": frozenset({QUICK_REPLY, POSTBACK, FLOW_REPLY}),
    "button": frozenset({QUICK_REPLY}),
}


def _kinds(value: str) -> frozenset[str]:
    if value.lower() == "none":
        return frozenset()
    kinds = frozenset(k.strip().lower() for k in value.split(",") if k.strip())
    if not all(k.replace("_", "").isalnum() for k in kinds):
        raise ValueError(value)
    return frozenset().union(*(_OLD_KINDS.get(k, {k}) for k in kinds))


READ_RECEIPTS = ("batch", "arrival", "off")


@dataclass(frozen=True)
class WindowSettings:
    """How windows open, grow and close (docs/windows.md)."""

    mode: str
    window_ms: int
    """The quiet gap (sliding) or the window length (fixed)."""
    max_wait_ms: int
    max_messages: int
    max_bytes: int
    grace_ms: int
    max_lateness_ms: int
    max_skew_ms: int
    flush_on: frozenset[str]
    dedupe_ttl_s: int
    conversation_ttl_s: int
    """How long a conversation's seq and history outlive its last batch (common/lifetime.py)."""


@dataclass(frozen=True)
class TakeoverSettings:
    """Who is a human, and how long a human keeps a conversation (README, "Human takeover")."""

    meta_app_id: str
    """LULL_META_APP_ID: the Meta app lull sends with. An echo with this app_id is lull's
    own reply; "" to tell lull's replies by the message ids the sender remembered."""
    pause: PauseSettings
    history_messages: int
    """LULL_HISTORY_MESSAGES, as the sender reads it: a human's message joins the history."""
    conversation_ttl_s: int
    """LULL_CONVERSATION_TTL_S: the history a human's message joins lives this long."""


def takeover_from_env(env: Env, conversation_ttl_s: int | None = None) -> TakeoverSettings:
    """LULL_META_APP_ID, the pause settings and the history settings the sender shares."""
    return TakeoverSettings(
        meta_app_id=env.parsed("LULL_META_APP_ID", "", _app_id, "a Meta app id (digits)"),
        pause=PauseSettings.from_env(env),
        history_messages=env.integer("LULL_HISTORY_MESSAGES", 20, minimum=0, maximum=1000),
        # Given by the caller that read it for the windows: a problem is reported once.
        conversation_ttl_s=conversation_ttl_from_env(env)
        if conversation_ttl_s is None
        else conversation_ttl_s,
    )


def _app_id(value: str) -> str:
    value = value.strip()
    if value and not (value.isascii() and value.isdigit() and len(value) <= 32):
        raise ValueError(value)
    return value


@dataclass(frozen=True)
class ProcessorSettings:
    """Everything the processor reads from the environment, validated."""

    common: CommonSettings
    window: WindowSettings
    group: GroupSettings
    takeover: TakeoverSettings
    metrics_host: str
    metrics_port: int
    read_on_arrival: bool = False
    """LULL_READ_RECEIPTS=arrival: each new message is logged for the sender to mark read."""
    accounts: Accounts[ProcessorAccount] | None = None
    """Each account's window and pause settings (LULL_ACCOUNTS); None: the environment's
    for all."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProcessorSettings:
        """Read and validate; raises ConfigError naming every bad variable."""
        env = Env(os.environ if environ is None else environ, collect=True)
        common = common_from_env(env)
        window = window_from_env(env)
        settings = cls(
            common=common,
            window=window,
            group=group_from_env(env),
            takeover=takeover_from_env(env, window.conversation_ttl_s),
            metrics_host=env.string("LULL_METRICS_HOST", "127.0.0.1"),
            metrics_port=env.integer("LULL_PROCESSOR_METRICS_PORT", 9101, minimum=0, maximum=65535),
            # The sender validates the same variable; only `arrival` concerns the processor.
            read_on_arrival=env.choice("LULL_READ_RECEIPTS", "batch", READ_RECEIPTS) == "arrival",
            accounts=window_accounts(env, os.environ if environ is None else environ),
        )
        env.check()
        return settings


@dataclass(frozen=True)
class ProcessorAccount:
    """One account's processor settings (the accounts file over the environment)."""

    window: WindowShape
    pause: PauseSettings
    """How long a human's turn pauses the account's conversations."""


def window_shape(env: Env) -> WindowShape:
    """One account's window settings, read as the environment's are."""
    return WindowShape.of(window_from_env(env))


def processor_account(env: Env) -> ProcessorAccount:
    """One account's window and pause settings, read as the environment's are."""
    return ProcessorAccount(window_shape(env), PauseSettings.from_env(env))


def window_accounts(env: Env, environ: Mapping[str, str]) -> Accounts[ProcessorAccount] | None:
    """The accounts file's window and pause settings (None without one); its problems go to
    env."""
    # The processor uses no secret: the sender's need not be in its environment.
    return accounts_in(env, environ, processor_account, secrets=False)


def window_from_env(env: Env) -> WindowSettings:
    """The LULL_WINDOW_* family, with the cross-field checks."""
    window_ms = env.integer("LULL_WINDOW_MS", 5000, minimum=1, maximum=DAY_S * 1000)
    max_wait_ms = env.integer("LULL_MAX_WAIT_MS", 30_000, minimum=1, maximum=DAY_S * 1000)
    if max_wait_ms < window_ms and env.ok("LULL_WINDOW_MS", "LULL_MAX_WAIT_MS"):
        env.report(
            ConfigError("LULL_MAX_WAIT_MS", str(max_wait_ms), f">= LULL_WINDOW_MS ({window_ms})")
        )
    dedupe_ttl_s = env.integer("LULL_DEDUPE_TTL_S", DEDUPE_TTL_S, minimum=60, maximum=30 * DAY_S)
    conversation_ttl_s = conversation_ttl_from_env(env)
    if env.ok("LULL_DEDUPE_TTL_S", "LULL_CONVERSATION_TTL_S"):
        require_outlasts(env, conversation_ttl_s, dedupe_ttl_s * 1000, DEDUPE_HORIZON)
    return WindowSettings(
        mode=env.choice("LULL_WINDOW_MODE", "sliding", WINDOW_MODES),
        window_ms=window_ms,
        max_wait_ms=max_wait_ms,
        # Bounded so that a window's script calls stay a few ms (common/store/windows.py).
        max_messages=env.integer("LULL_MAX_MESSAGES", 50, minimum=1, maximum=MAX_MESSAGES_CAP),
        max_bytes=env.integer("LULL_MAX_BYTES", 65_536, minimum=256, maximum=MAX_BYTES_CAP),
        grace_ms=env.integer("LULL_GRACE_MS", 0, minimum=0, maximum=DAY_S * 1000),
        max_lateness_ms=env.integer(
            "LULL_MAX_LATENESS_MS", window_ms // 2, minimum=0, maximum=DAY_S * 1000
        ),
        max_skew_ms=env.integer("LULL_MAX_SKEW_MS", 2000, minimum=0, maximum=DAY_S * 1000),
        flush_on=env.parsed(
            "LULL_FLUSH_ON",
            frozenset({POSTBACK, QUICK_REPLY}),
            _kinds,
            "comma-separated event kinds, e.g. postback,quick_reply, or none",
        ),
        dedupe_ttl_s=dedupe_ttl_s,
        conversation_ttl_s=conversation_ttl_s,
    )
