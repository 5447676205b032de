"""Each account's sender settings, as the accounts file in use says (its handler, rate
limits and presence over the environment's): a dict lookup per batch or send."""

from __future__ import annotations

from lull.common.accounts_reload import LiveAccounts
from lull.sender.account_settings import AccountSend, BotSettings, RateSettings
from lull.sender.settings import SenderSettings


class AccountSends:
    """The sender settings of an account: the accounts file's, else the environment's."""

    def __init__(
        self, settings: SenderSettings, accounts: LiveAccounts[AccountSend] | None = None
    ) -> None:
        self._default = AccountSend(
            bot=BotSettings(settings.handler, settings.handler_secret, settings.handler_timeout_ms),
            rates=RateSettings(settings.rate_global, settings.rate_per_user),
            presence=settings.presence,
        )
        self._accounts = accounts

    def of(self, account_id: str) -> AccountSend:
        """account_id's settings, as the file in use says."""
        if self._accounts is None:
            return self._default
        return self._accounts.current.of(account_id)
