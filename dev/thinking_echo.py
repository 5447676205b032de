"""`make run`'s bot (LULL_HANDLER=python:lull.dev.thinking_echo:reply): the echo bot, after
THINK_S, as a bot that asks an AI model takes a while. Presence is shown only while a bot
works, so with it the fake Graph API's log shows the user's messages read and the bot typing
before the reply (an instant echo answers before the first presence call starts).

It also says what it got through each media link (docs/media.md): it GETs the link, as a
bot would, and names the type and size; a voice note's transcript is already in the text."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from lull.sender.bot import ReplyJson

THINK_S = 1.0
FETCH_TIMEOUT_S = 5.0


async def reply(batch: dict[str, Any]) -> list[ReplyJson]:
    """What `echo` answers (and what came through the media links), THINK_S later."""
    await asyncio.sleep(THINK_S)
    parts = [batch.get("text") or ""] + [await _fetched(url) for url in _links(batch)]
    text = "\n".join(part for part in parts if part.strip())
    return [{"text": text}] if text else []


def _links(batch: dict[str, Any]) -> list[str]:
    return [
        attachment["media"]["url"]
        for message in batch.get("messages", [])
        for attachment in message.get("attachments", [])
        if isinstance(attachment.get("media"), dict) and "url" in attachment["media"]
    ]


async def _fetched(url: str) -> str:
    """What a GET of a media link gave, in a few words."""
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as got:
            body = await got.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"[media link failed: {type(exc).__name__}]"
    if got.status != 200:
        return f"[media link answered {got.status}]"
    return f"[got {got.content_type}, {len(body)} bytes through the media link]"
