"""The sender's part of an account's settings (the accounts file, LULL_ACCOUNTS): the
handler, its secret and timeout, the rate limits, presence, Graph hosts, the handoff and its
pause, read as the environment's are (common/accounts.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import cast
from urllib.parse import urlsplit

from lull.common.accounts import Accounts, accounts_in
from lull.common.env import ConfigError, Env
from lull.common.store.pauses import PauseSettings
from lull.sender.bot import HANDLER_FORMS, load_function, parse_handler_spec
from lull.sender.graph.routes import (
    FACEBOOK_GRAPH,
    INSTAGRAM_GRAPH,
    INSTAGRAM_LOGINS,
    GraphRoutes,
    InstagramLogin,
    host_problem,
)
from lull.sender.handoff import HandoffSettings
from lull.sender.presence.settings import PresenceSettings
from lull.sender.rates.rate import RATE_FORMAT, Rate, parse_rate


@dataclass(frozen=True)
class BotSettings:
    """Where one account's batches go: a handler, its secret, its timeout."""

    handler: str
    handler_secret: str = field(repr=False)
    handler_timeout_ms: int


@dataclass(frozen=True)
class RateSettings:
    """An account's limits: its Graph sends (LULL_RATE_GLOBAL), its batches per user
    (LULL_RATE_PER_USER); None: no limit."""

    rate_global: Rate | None
    rate_per_user: Rate | None


@dataclass(frozen=True)
class GraphSettings:
    """Where an account's sends go: its Graph hosts (and Instagram login), the version."""

    routes: GraphRoutes
    version: str


@dataclass(frozen=True)
class AccountSend:
    """One account's sender settings, built once per account."""

    bot: BotSettings
    rates: RateSettings
    graph: GraphSettings
    presence: PresenceSettings
    """Its read receipts, typing and pacing."""
    pause: PauseSettings
    """How long the bot's handoff pauses the account's conversations."""
    handoff: HandoffSettings
    """Where its handoffs go: the thread control target, the CRM webhook."""


def rates_from_env(env: Env) -> RateSettings:
    """LULL_RATE_GLOBAL and LULL_RATE_PER_USER."""
    return RateSettings(
        rate_global=env.parsed("LULL_RATE_GLOBAL", parse_rate("80/s"), parse_rate, RATE_FORMAT),
        rate_per_user=env.parsed(
            "LULL_RATE_PER_USER", parse_rate("10/1m:3"), parse_rate, RATE_FORMAT
        ),
    )


def handler_from_env(env: Env, *, required: bool = True) -> str:
    """LULL_HANDLER, checked (a python: handler is imported); "" when unset and not required."""
    spec = env.parsed("LULL_HANDLER", "", parse_handler_spec, HANDLER_FORMS)
    if not spec:
        if required and env.ok("LULL_HANDLER"):
            # No default: a production sender that silently echoed users would be worse
            # than none.
            env.report(ConfigError("LULL_HANDLER", None, f"required: {HANDLER_FORMS}"))
        return spec
    if spec.startswith("python:"):
        try:
            load_function(spec)
        except ConfigError as exc:
            env.report(exc)
    return spec


def bot_from_env(env: Env, *, required: bool = True) -> BotSettings:
    """LULL_HANDLER, LULL_HANDLER_SECRET, LULL_HANDLER_TIMEOUT_MS."""
    return BotSettings(
        handler=handler_from_env(env, required=required),
        handler_secret=env.string("LULL_HANDLER_SECRET", ""),
        handler_timeout_ms=env.integer(
            "LULL_HANDLER_TIMEOUT_MS", 30_000, minimum=10, maximum=600_000
        ),
    )


def account_send(env: Env, *, arrivals: bool = False) -> AccountSend:
    """One account's sender settings, read as the environment's are. arrivals: the
    environment's LULL_READ_RECEIPTS is arrival (the processor logs each message then, for
    every account); an account may choose arrival only then."""
    presence = PresenceSettings.from_env(env)
    if presence.read_receipts == "arrival" and not arrivals and env.ok("LULL_READ_RECEIPTS"):
        allowed = "arrival for one account needs LULL_READ_RECEIPTS=arrival in the environment"
        env.report(ConfigError("LULL_READ_RECEIPTS", "arrival", allowed))
    return AccountSend(
        bot=bot_from_env(env),
        rates=rates_from_env(env),
        graph=GraphSettings(
            graph_routes_from_env(env), env.string("LULL_GRAPH_API_VERSION", "v23.0")
        ),
        presence=presence,
        pause=PauseSettings.from_env(env),
        handoff=HandoffSettings.from_env(env),
    )


def account_sends_of(environ: Mapping[str, str]) -> Callable[[Env], AccountSend]:
    """account_send for the accounts of environ (whose read receipts it knows)."""
    arrivals = (environ.get("LULL_READ_RECEIPTS") or "").strip().lower() == "arrival"
    return partial(account_send, arrivals=arrivals)


def send_accounts(env: Env, environ: Mapping[str, str]) -> Accounts[AccountSend] | None:
    """The accounts file's sender settings (None without one); its problems go to env."""
    return accounts_in(env, environ, account_sends_of(environ))


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(value)
    return value.rstrip("/")


def graph_routes_from_env(env: Env) -> GraphRoutes:
    """Each platform's Graph host: its own variable, else LULL_GRAPH_API_BASE, else the host
    Meta documents for it. Meta's two hosts are checked against the Instagram login."""
    login = cast(InstagramLogin, env.choice("LULL_INSTAGRAM_LOGIN", "facebook", INSTAGRAM_LOGINS))
    base_name, allowed = "LULL_GRAPH_API_BASE", "an http(s) URL"
    base = env.parsed(base_name, None, _base_url, allowed)
    instagram = INSTAGRAM_GRAPH if login == "instagram" else FACEBOOK_GRAPH
    default = {"messenger": FACEBOOK_GRAPH, "instagram": instagram, "whatsapp": FACEBOOK_GRAPH}
    names = {
        "messenger": "LULL_GRAPH_API_BASE_MESSENGER",
        "instagram": "LULL_GRAPH_API_BASE_INSTAGRAM",
        "whatsapp": "LULL_GRAPH_API_BASE_WHATSAPP",
    }
    bases: dict[str, str] = {}
    for platform, name in names.items():
        own = env.parsed(name, None, _base_url, allowed)
        bases[platform] = own or base or default[platform]
        problem = host_problem(platform, bases[platform], login)
        if problem is not None:
            culprit = name if own else base_name
            env.report(
                ConfigError(culprit, bases[platform], f"{problem}; see LULL_INSTAGRAM_LOGIN")
            )
    return GraphRoutes(bases, base or FACEBOOK_GRAPH, login)
