"""The presence bench's bot (LULL_HANDLER=python:tests.bench.presence_bot:reply): echo after
THINK_S, so that the read receipt and typing calls, which run beside the bot call, go out
(an instant bot answers before they start, and they are dropped unsent)."""

from __future__ import annotations

import asyncio
from typing import Any

THINK_S = 0.1
HANDLER = "python:tests.bench.presence_bot:reply"


async def reply(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """One reply echoing the batch, after THINK_S."""
    await asyncio.sleep(THINK_S)
    return [{"text": batch["text"]}]
