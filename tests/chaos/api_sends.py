"""Send API traffic for the chaos run: messages posted with an Idempotency-Key, each key
posted one to three times (a client retrying, sometimes after its answer was lost), while
services are killed and Redis restarts. The verdict checks each accepted key was sent
exactly once (outside the documented send-then-crash gap, as for batches).

Sent `"force": true` as the bot: the humans' pauses of the run do not hold them back, so
every accepted key must reach the Graph API.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

import aiohttp

from tests.chaos.bot import REPLY_PREFIX
from tests.chaos.stack import API_TOKEN

API_KEY_PREFIX = "apikey:"
"""What an API send's text names after the bot's reply prefix: the verdict keys sends by it."""


@dataclass(frozen=True)
class ApiPlan:
    """How many API messages, how often."""

    every_s: float = 0.2
    conversations: int = 10
    most_repeats: int = 3
    timeout_s: float = 3.0


@dataclass
class ApiResult:
    """The keys the send API answered 202 for, and every key posted."""

    accepted: set[str] = field(default_factory=set)
    posted: set[str] = field(default_factory=set)
    refused: int = 0


def api_text(key: str) -> str:
    """The text an API message carries: the fake Graph API's record names its key."""
    return f"{REPLY_PREFIX}{API_KEY_PREFIX}{key}"


async def run_api_sends(plan: ApiPlan, base_url: str, seed: int, stop: asyncio.Event) -> ApiResult:
    """POST until stop; each key one to most_repeats times."""
    rng = random.Random(seed + 25)
    result = ApiResult()
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    n = 0
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        while not stop.is_set():
            n += 1
            key = f"s{seed}-{n}"
            conversation = (
                f"messenger:{100 + rng.randrange(3)}:api{rng.randrange(plan.conversations)}"
            )
            url = f"{base_url}/v1/conversations/{conversation}/messages"
            body = {"replies": [{"text": api_text(key)}], "force": True}
            result.posted.add(key)
            for _ in range(rng.randint(1, plan.most_repeats)):
                try:
                    async with session.post(
                        url, json=body, headers={"Idempotency-Key": key}
                    ) as response:
                        if response.status == 202:
                            result.accepted.add(key)
                        else:
                            result.refused += 1
                except (aiohttp.ClientError, TimeoutError):
                    result.refused += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), plan.every_s)
    return result
