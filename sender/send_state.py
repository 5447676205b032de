"""What the sender keeps in Redis about one batch between attempts, and the finish step."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, FieldT

from common.coalesce import Coalescer, Command
from common.keys import Keys
from common.lua import read_lua
from sender.graph import GraphRequest

# A retried batch's state outlives any sane retry schedule, then cleans itself up.
STATE_TTL_S = 86_400


@dataclass
class SendState:
    """A batch's replies (as Graph requests) and how many were accepted, across attempts.

    Kept so that a retry after a failed send neither calls the bot again (it might answer
    differently) nor repeats the replies that were already accepted.
    """

    requests: list[GraphRequest] | None = None
    sent: int = 0
    attempts: int = 0
    admitted: bool = False
    """The per-user rate limit already let this batch through."""

    @classmethod
    def decode(cls, raw: dict[bytes, bytes]) -> SendState:
        """From HGETALL; an empty hash is a fresh batch."""
        requests = None
        if b"requests" in raw:
            requests = [
                GraphRequest(r["account_id"], r["path"], r["payload"])
                for r in orjson.loads(raw[b"requests"])
            ]
        return cls(
            requests=requests,
            sent=int(raw.get(b"sent", 0)),
            attempts=int(raw.get(b"attempts", 0)),
            admitted=raw.get(b"admitted") == b"1",
        )

    def encode(self) -> dict[FieldT, EncodableT]:
        """For HSET."""
        fields: dict[FieldT, EncodableT] = {
            "sent": self.sent,
            "attempts": self.attempts,
            "admitted": 1 if self.admitted else 0,
        }
        if self.requests is not None:
            fields["requests"] = orjson.dumps(
                [{"account_id": r.account_id, "path": r.path, "payload": r.payload}
                 for r in self.requests]
            )  # fmt: skip
        return fields


@dataclass
class Loaded:
    """What one round trip tells about a batch before it is handled."""

    delivered_seq: int
    latest_seq: int
    state: SendState
    history: list[Any] = field(default_factory=list)


class SendStore:
    """Reads and writes per-batch sender state; finishes batches with one Lua call."""

    def __init__(self, client: aioredis.Redis, keys: Keys, group: str) -> None:
        self._client = client
        self._keys = keys
        self._group = group
        self._batched = Coalescer(client)
        self._mark = read_lua("sender", "deliver_mark")
        self._mark_sha = hashlib.sha1(self._mark.encode()).hexdigest()  # noqa: S324  (Redis's id)

    async def load_script(self) -> None:
        """SCRIPT LOAD the finish script."""
        await self._client.script_load(self._mark)

    async def load(self, shard: int, batch: dict[str, Any], history: bool) -> Loaded:
        """Delivered seq, newest closed seq, send state and history, in one round trip."""
        keys, conversation = self._keys, batch["conversation"]
        commands: list[Command] = [
            ("HGET", keys.delivered(shard), conversation),
            ("HGET", keys.seq(shard), conversation),
            ("HGETALL", keys.send_state(shard, batch["batch_id"])),
        ]
        if history:
            commands.append(("LRANGE", keys.history(conversation), 0, -1))
        results = await self._batched.execute(commands)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return Loaded(
            delivered_seq=int(results[0] or 0),
            latest_seq=int(results[1] or 0),
            state=SendState.decode(results[2]),
            history=[orjson.loads(item) for item in results[3]] if history else [],
        )

    async def latest_seq(self, shard: int, conversation: str) -> int:
        """The seq of the conversation's newest closed batch."""
        return int(await self._client.hget(self._keys.seq(shard), conversation) or 0)

    async def save(self, shard: int, batch_id: str, state: SendState) -> None:
        """Keep a batch's progress for its next attempt."""
        key = self._keys.send_state(shard, batch_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(key, mapping=state.encode())
        pipe.expire(key, STATE_TTL_S)
        await pipe.execute()

    async def finish(
        self,
        *,
        shard: int,
        entry_id: str,
        batch: dict[str, Any],
        history_items: list[bytes],
        keep: int,
        ttl_s: int,
        dead: bool = False,
    ) -> None:
        """Mark finished (delivered, or dead when dead), XACK, drop send state, add history."""
        keys, conversation = self._keys, batch["conversation"]
        args = (
            5,
            keys.delivered(shard),
            keys.outbound(shard),
            keys.send_state(shard, batch["batch_id"]),
            keys.history(conversation),
            keys.dead_seqs(shard),
            self._group,
            entry_id,
            conversation,
            batch["seq"],
            keep,
            ttl_s,
            "dead" if dead else "done",
            *history_items,
        )
        [result] = await self._batched.execute([("EVALSHA", self._mark_sha, *args)])
        if isinstance(result, NoScriptError):
            # Redis restarted and forgot the script; finishing twice is harmless.
            await self.load_script()
            [result] = await self._batched.execute([("EVALSHA", self._mark_sha, *args)])
        if isinstance(result, Exception):
            raise result

    async def close(self) -> None:
        """Stop the shared pipeline."""
        await self._batched.close()
