"""What the processor asks and writes about the business side's turns (echoes, handovers):
whether an echo was recorded before or is a message lull sent, and a human's message in
the conversation's history, once (lua/human_turn.lua)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.scripts import LuaScript
from lull.common.store.sent import SentMessage


@dataclass(frozen=True, slots=True)
class EchoLook:
    """One echo to look up: its conversation and mid; by_mid asks whether lull sent it."""

    conversation: str
    mid: str
    by_mid: bool


@dataclass(frozen=True, slots=True)
class EchoFacts:
    """What Redis says about one echo."""

    seen: bool
    """Recorded before as a human's message (Meta redelivered it)."""
    remembered: bool | None
    """Whether a sent message is remembered under its mid (None: not asked)."""
    sent: SentMessage | None
    """What was remembered, when it could be read."""
    in_flight: bool
    """A send to the conversation is in flight (its mid may be about to be remembered)."""


class TurnStore:
    """Echo lookups and the human-turn history script."""

    def __init__(self, client: RedisClient, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._history = LuaScript.read("human_turn")

    async def load_scripts(self) -> None:
        """SCRIPT LOAD the history script."""
        await self._history.load(self._client)

    async def look(self, echoes: Sequence[EchoLook]) -> list[EchoFacts]:
        """The facts of every echo, in one round trip; in the same order."""
        if not echoes:
            return []
        keys = self._keys
        pipe = self._client.pipeline(transaction=False)
        for echo in echoes:
            pipe.exists(keys.human_seen(echo.conversation, echo.mid))
            if echo.by_mid:
                pipe.get(keys.sent_message(echo.mid))
                pipe.exists(keys.send_inflight(echo.conversation))
        replies = iter(await pipe.execute())
        facts: list[EchoFacts] = []
        for echo in echoes:
            seen = int(next(replies)) == 1
            if not echo.by_mid:
                facts.append(EchoFacts(seen, None, None, in_flight=False))
                continue
            raw, in_flight = next(replies), int(next(replies)) == 1
            sent = None if raw is None else SentMessage.decode(raw)
            facts.append(EchoFacts(seen, raw is not None, sent, in_flight))
        return facts

    async def record_human(
        self,
        conversation: str,
        *,
        mid: str,
        text: str,
        time_ms: int,
        app_id: str,
        keep: int,
        ttl_s: int,
    ) -> bool:
        """Add a human's message to the conversation's history (the last keep items, living
        ttl_s), once per mid; False when it was recorded before."""
        keys = self._keys
        item = orjson.dumps(
            {"role": "human", "mid": mid, "text": text, "time": time_ms}
            | ({"app_id": app_id} if app_id else {})
        )
        recorded = await self._history.call(
            self._client,
            (keys.history(conversation), keys.human_seen(conversation, mid)),
            (keep, ttl_s, item),
        )
        return int(recorded) == 1
