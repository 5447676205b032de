"""How long a pause lasts, per account: the pause times of those who pause a conversation
outside the processor's own human turns (ingest's admin API and send API, `lull pause`).

An account's times are its table's human_pause_ms and human_pause_max_ms in the accounts
file (LULL_ACCOUNTS), else the "*" table's, else the environment's LULL_HUMAN_PAUSE_MS and
LULL_HUMAN_PAUSE_MAX_MS: what the processor gives a human's turn on the same account, read
by the same reader (PauseSettings.from_env over common/accounts.py's layers). An account the
file does not name gets the defaults, also with LULL_ACCOUNTS_STRICT=1: an operator's or a
help desk's pause is never refused for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from lull.common.accounts import Accounts, accounts_in
from lull.common.accounts_reload import LiveAccounts
from lull.common.conversation import Conversation
from lull.common.env import Env
from lull.common.store.pauses import PauseSettings


def pause_accounts(env: Env, environ: Mapping[str, str]) -> Accounts[PauseSettings] | None:
    """The accounts file's pause times (None without a file); its problems go to env, each
    with its file:line. Secrets are checked, not followed: pausing uses none."""
    return accounts_in(env, environ, PauseSettings.from_env, secrets=False)


class PauseTimes:
    """Each account's pause times, as the accounts file says now (reloads included)."""

    def __init__(
        self, environment: PauseSettings, accounts: LiveAccounts[PauseSettings] | None = None
    ) -> None:
        self.environment = environment
        """LULL_HUMAN_PAUSE_MS and LULL_HUMAN_PAUSE_MAX_MS: every account's without a file."""
        self.accounts = accounts
        """The accounts file in use; None without one."""

    def of(self, account_id: str) -> PauseSettings:
        """The pause times of account_id's conversations."""
        if self.accounts is None:
            return self.environment
        return self.accounts.current.of(account_id)

    def of_conversation(self, conversation: str) -> PauseSettings:
        """The pause times of a conversation, by its key's account (an operator's key,
        checked as Conversation.parse checks it)."""
        return self.of(Conversation.parse(conversation).account_id)
