"""The sender bench's bot (LULL_HANDLER=python:tests.bench.slow_bot:reply): echo, except
that conversations whose user id starts with "slow" take SLOW_S to answer, as an AI call
that thinks for a while does."""

from __future__ import annotations

import asyncio
from typing import Any

SLOW_S = 2.0
SLOW_PREFIX = "slow"
HANDLER = "python:tests.bench.slow_bot:reply"


async def reply(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """One reply echoing the batch, after SLOW_S for the slow users."""
    if str(batch["user_id"]).startswith(SLOW_PREFIX):
        await asyncio.sleep(SLOW_S)
    return [{"text": batch["text"]}]
