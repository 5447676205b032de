"""Each account's batches to its own bot (the accounts file's handler, secret and timeout):
one Bot per distinct handler, opened when an account first needs it and kept until close."""

from __future__ import annotations

from typing import Any

from lull.common.accounts_reload import LiveAccounts
from lull.sender.accounts.settings import AccountSend, BotSettings
from lull.sender.bot import AnswerJson, Bot, Reached, build_bot


class AccountBots:
    """A Bot that hands each batch to its account's bot, as the accounts file says now."""

    name = "accounts"
    forward_only = False
    """Per account: a `none` account's bot answers nothing, and never says it was reached."""

    def __init__(self, accounts: LiveAccounts[AccountSend]) -> None:
        self._accounts = accounts
        self._bots: dict[BotSettings, Bot] = {}

    async def open(self) -> None:
        """Build the bots the accounts name now: a handler that cannot be built fails the
        start, not the first batch."""
        current = self._accounts.current
        for send in (current.default, *current.by_id.values()):
            await self._bot(send.bot)

    async def __call__(self, batch: dict[str, Any], reached: Reached | None = None) -> AnswerJson:
        """The answer of the batch's account's bot."""
        send = self._accounts.current.of(str(batch.get("account_id", "")))
        bot = await self._bot(send.bot)
        return await bot(batch, reached)

    async def _bot(self, settings: BotSettings) -> Bot:
        bot = self._bots.get(settings)
        if bot is None:
            bot = await build_bot(
                settings.handler,
                secret=settings.handler_secret,
                timeout_ms=settings.handler_timeout_ms,
            )
            # Another batch may have built it meanwhile: one bot per handler is kept.
            kept = self._bots.setdefault(settings, bot)
            if kept is not bot:
                await bot.close()
            bot = kept
        return bot

    async def close(self) -> None:
        """Close every bot opened."""
        bots, self._bots = list(self._bots.values()), {}
        for bot in bots:
            await bot.close()
