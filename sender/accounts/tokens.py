"""Each account's Graph access token: the accounts file's `access_token` (as the file in use
says), else LULL_ACCESS_TOKENS'. The file's "*" token is the default ("*" in both)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from lull.common.access_tokens import DEFAULT_ACCOUNT
from lull.common.accounts import Accounts
from lull.common.accounts_file import AccountsFile
from lull.common.accounts_reload import LiveAccounts
from lull.sender.accounts.settings import AccountSend


class AccountTokens(Mapping[str, str]):
    """A token per account id, the file's over the environment's, read per call."""

    def __init__(
        self, environment: Mapping[str, str], accounts: LiveAccounts[AccountSend] | None
    ) -> None:
        self._environment = environment
        self._accounts = accounts
        self._seen: Accounts[AccountSend] | None = None
        self._file: dict[str, str] = {}

    def _tokens(self) -> dict[str, str]:
        """The file's tokens, worked out once per file read (a dict lookup per call)."""
        if self._accounts is None:
            return self._file
        current = self._accounts.current
        if current is not self._seen:
            self._seen, self._file = current, _file_tokens(current.file)
        return self._file

    def __getitem__(self, account_id: str) -> str:
        """The account's token; KeyError when neither the file nor the environment has one."""
        token = self._tokens().get(account_id)
        return token if token is not None else self._environment[account_id]

    def __iter__(self) -> Iterator[str]:
        """The account ids with a token (the repr of a Graph client lists them)."""
        return iter(sorted({*self._tokens(), *self._environment}))

    def __len__(self) -> int:
        """How many account ids have a token."""
        return len({*self._tokens(), *self._environment})


def _file_tokens(accounts_file: AccountsFile | None) -> dict[str, str]:
    if accounts_file is None:
        return {}
    tokens = {
        account_id: table.access_token
        for account_id, table in accounts_file.accounts.items()
        if table.access_token is not None
    }
    if accounts_file.defaults.access_token is not None:
        tokens[DEFAULT_ACCOUNT] = accounts_file.defaults.access_token
    return tokens
