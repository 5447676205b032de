"""`make run`'s bot (LULL_HANDLER=python:lull.dev.thinking_echo:reply): the echo bot, after
THINK_S, as a bot that asks an AI model takes a while. Presence is shown only while a bot
works, so with it the fake Graph API's log shows the user's messages read and the bot typing
before the reply (an instant echo answers before the first presence call starts)."""

from __future__ import annotations

import asyncio
from typing import Any

from lull.sender.bot import EchoBot, ReplyJson

THINK_S = 1.0


async def reply(batch: dict[str, Any]) -> list[ReplyJson]:
    """What `echo` answers, THINK_S later."""
    await asyncio.sleep(THINK_S)
    return await EchoBot()(batch)
