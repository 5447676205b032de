"""Each account's rate limits, as the accounts file in use says (LULL_RATE_GLOBAL and
LULL_RATE_PER_USER per account): a dict lookup per batch or send."""

from __future__ import annotations

from lull.common.accounts_reload import LiveAccounts
from lull.sender.account_settings import AccountSend, RateSettings
from lull.sender.settings import SenderSettings


class AccountRates:
    """The limits of an account: the accounts file's, else the environment's."""

    def __init__(
        self, settings: SenderSettings, accounts: LiveAccounts[AccountSend] | None = None
    ) -> None:
        self._default = RateSettings(settings.rate_global, settings.rate_per_user)
        self._accounts = accounts

    def of(self, account_id: str) -> RateSettings:
        """The limits account_id's batches and sends count against."""
        if self._accounts is None:
            return self._default
        return self._accounts.current.of(account_id).rates
