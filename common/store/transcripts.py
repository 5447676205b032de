"""Transcripts in Redis: one hash per conversation, message id to its transcript (or why
there is none), on the conversation's shard, expiring with its other state.

The only media-related thing lull stores: a transcript must survive a retry or a claim by
another replica, so that a voice note is transcribed once. Never media bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys


@dataclass(frozen=True, slots=True)
class Transcript:
    """A voice note's transcript, or why it has none."""

    text: str | None
    error: str | None = None

    def encode(self) -> bytes:
        """The stored value."""
        return orjson.dumps({"text": self.text} if self.error is None else {"error": self.error})

    @classmethod
    def decode(cls, raw: bytes | str) -> Transcript | None:
        """From the stored value; None for one this version cannot read."""
        try:
            doc: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if isinstance(doc, dict) and isinstance(doc.get("text"), str):
            return cls(doc["text"])
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return cls(None, doc["error"])
        return None


class TranscriptStore:
    """Reads and writes transcripts (key: Keys.transcripts)."""

    def __init__(self, client: RedisClient, keys: Keys, ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s

    async def read(self, conversation: str, mids: list[str]) -> dict[str, Transcript]:
        """The stored transcripts of these messages."""
        if not mids:
            return {}
        values = await self._client.hmget(self._keys.transcripts(conversation), mids)
        found = {}
        for mid, raw in zip(mids, values, strict=True):
            transcript = Transcript.decode(raw) if raw is not None else None
            if transcript is not None:
                found[mid] = transcript
        return found

    async def write(self, conversation: str, mid: str, transcript: Transcript) -> None:
        """Keep a transcript; the hash expires with the conversation's state."""
        key = self._keys.transcripts(conversation)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mid, transcript.encode())
            pipe.expire(key, self._ttl_s)
            await pipe.execute()
