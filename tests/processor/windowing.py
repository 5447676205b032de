"""Helpers for window tests: settings, events, and reading emitted batches."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from lull.common.env import Env
from lull.common.events import Event
from lull.common.store.keys import Keys
from lull.processor.settings import WindowSettings, window_from_env


def window_settings(**overrides: Any) -> WindowSettings:
    """Defaults from the environment parser, with overrides."""
    return replace(window_from_env(Env({})), **overrides)


async def redis_now_ms(client: aioredis.Redis) -> int:
    """The Redis clock, the one the scripts use."""
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def message(
    mid: str,
    t_ms: int,
    *,
    text: str | None = None,
    user: str = "u1",
    kind: str = "text",
    platform: str = "messenger",
    account: str = "p1",
    target: str | None = None,
) -> Event:
    """A user message event."""
    return Event(
        platform=platform,
        account_id=account,
        user_id=user,
        mid=mid,
        event_time_ms=t_ms,
        kind=kind,
        text=mid if text is None else text,
        raw={"mid": mid},
        target_mid=target,
    )


async def batches(client: aioredis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every batch on every outbound stream, decoded."""
    found: list[dict[str, Any]] = []
    for stream in keys.all_outbound():
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(stream))
        found.extend(orjson.loads(fields[b"batch"]) for _id, fields in entries)
    return found


async def life_seqs(client: aioredis.Redis, keys: Keys, found: list[dict[str, Any]]) -> list[int]:
    """Each batch's seq counted from its conversation's life (1, 2, 3 ...): a life's seq
    starts at a base from the Redis clock, which is its delivered seq until a sender runs."""
    bases = {
        conversation: int(
            await client.hget(keys.conversation_state(conversation), "delivered") or -1
        )
        for conversation in {b["conversation"] for b in found}
    }
    return [b["seq"] - bases[b["conversation"]] for b in found]
