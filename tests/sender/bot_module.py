"""Bot functions for LULL_HANDLER=python:tests.sender.bot_module:<name> in tests."""

from __future__ import annotations

import asyncio
from typing import Any

from lull.sender.bot import BotPermanent, BotRetry

NOT_A_FUNCTION = "replies"


async def reply(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """One reply quoting the batch's text."""
    return [{"text": "py: " + batch["text"]}]


async def busy(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Asks for a retry in 1.5 s."""
    raise BotRetry("busy", retry_after_ms=1500)


async def refuse(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Refuses the batch for good."""
    raise BotPermanent("unsupported batch")


async def crash(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Fails the way a bug or a dependency would."""
    raise RuntimeError("boom")


async def slow(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Never answers within a test's timeout."""
    await asyncio.sleep(10)
    return []


async def not_a_list(batch: dict[str, Any]) -> Any:
    """A bug: one reply instead of a list of replies."""
    return {"text": "oops"}


def not_async(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """A plain function: refused at start."""
    return []


async def hand_off(batch: dict[str, Any]) -> dict[str, Any]:
    """A last word to the user, then a human, please."""
    return {"replies": [{"text": "A person will answer you here."}],
            "handoff": {"reason": "asked for a refund"}}  # fmt: skip


async def hand_off_silently(batch: dict[str, Any]) -> dict[str, Any]:
    """A human, please, and nothing to say."""
    return {"handoff": {"reason": "angry customer"}}
