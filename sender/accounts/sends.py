"""Each account's sender settings, as the accounts file in use says (its handler, rate
limits, presence and handoff over the environment's): a dict lookup per batch or send."""

from __future__ import annotations

from lull.common.accounts_reload import LiveAccounts
from lull.sender.accounts.settings import AccountSend, BotSettings, GraphSettings, RateSettings
from lull.sender.graph.routes import GraphRoutes, Route
from lull.sender.handoff import AccountHandoff
from lull.sender.settings import SenderSettings


class AccountSends:
    """The sender settings of an account: the accounts file's, else the environment's."""

    def __init__(
        self, settings: SenderSettings, accounts: LiveAccounts[AccountSend] | None = None
    ) -> None:
        self._default = AccountSend(
            bot=BotSettings(settings.handler, settings.handler_secret, settings.handler_timeout_ms),
            rates=RateSettings(settings.rate_global, settings.rate_per_user),
            graph=GraphSettings(settings.graph_routes, settings.graph_version),
            presence=settings.presence,
            pause=settings.pause,
            handoff=settings.handoff,
        )
        self._accounts = accounts

    def of(self, account_id: str) -> AccountSend:
        """account_id's settings, as the file in use says."""
        if self._accounts is None:
            return self._default
        return self._accounts.current.of(account_id)

    def handoff_of(self, account_id: str) -> AccountHandoff:
        """What account_id's handoffs use, as the file in use says (its webhook is signed
        with its handler secret, as its bot calls are)."""
        send = self.of(account_id)
        return AccountHandoff(send.handoff, send.pause, send.bot.handler_secret)


class AccountRoutes(GraphRoutes):
    """GraphRoutes whose route is the account's (the accounts file's Graph hosts and
    Instagram login, else the environment's): what the Graph clients and handoffs hold."""

    __slots__ = ("_sends",)

    def __init__(self, default: GraphRoutes, sends: AccountSends) -> None:
        super().__init__(default.bases, default.default_base, default.instagram_login)
        object.__setattr__(self, "_sends", sends)

    def route(self, platform: str, account_id: str) -> Route:
        """Where a send of account_id on platform goes, as the file in use says."""
        sends: AccountSends = object.__getattribute__(self, "_sends")
        return sends.of(account_id).graph.routes.route(platform, account_id)
