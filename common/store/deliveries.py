"""A batch's delivery, as Redis holds it: what the sender keeps about one batch between
attempts (its send state), the ownership check before each step (lua/deliver_check.lua), and
the finish that marks it delivered or dead (lua/deliver_mark.lua), one atomic step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.typing import EncodableT, FieldT

from lull.common.batch import Batch
from lull.common.coalesce import Coalescer, Command
from lull.common.graph_request import GraphRequest
from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.legacy import LegacyKeys
from lull.common.store.legacy import seqs as legacy_seqs
from lull.common.store.scripts import LEGACY_PRELUDE, LIFE_PRELUDES, LuaScript, is_noscript

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
    throttles: int = 0
    """Consecutive times Meta throttled this batch's sends; they grow its wait, not attempts."""
    admitted: bool = False
    """The per-user rate limit already let this batch through."""
    message_ids: list[str] = field(default_factory=list)
    """The platform's id of each accepted request (mid, wamid), in send order."""
    handoff: str | None = None
    """The bot asked for a human, with this reason (sender/handoff.py)."""
    handoff_paused_until_ms: int = 0
    """The handoff's pause is set (until then); 0 before."""
    handoff_failures: int = 0
    """Failed notifications of LULL_HANDOFF_WEBHOOK so far."""
    handoff_notified: bool = False
    """LULL_HANDOFF_WEBHOOK answered: a retry (the finish failed) does not POST again."""
    held: list[str] = field(default_factory=list)
    """Rate-limit scopes whose unit the next send already took (sender/rates/send_limits.py): a
    later limit sent the batch back, and its come-back must not take them again."""
    read_shown: bool = False
    """The user was shown this batch read (sender/presence/calls.py): a retry, on this replica or
    one that claimed the entry, does not mark it read again. Rides the retry's save."""

    def shown_read(self) -> None:
        """Presence marked the batch read (or has the call on its way)."""
        self.read_shown = True

    @classmethod
    def decode(cls, raw: dict[bytes, bytes]) -> SendState:
        """From HGETALL; an empty hash is a fresh batch."""
        requests = None
        if b"requests" in raw:
            requests = [
                GraphRequest(
                    r["account_id"],
                    r["path"],
                    r["payload"],
                    r.get("platform", ""),
                    r.get("tag", ""),
                )
                for r in orjson.loads(raw[b"requests"])
            ]
        return cls(
            requests=requests,
            sent=int(raw.get(b"sent", 0)),
            attempts=int(raw.get(b"attempts", 0)),
            throttles=int(raw.get(b"throttles", 0)),
            admitted=raw.get(b"admitted") == b"1",
            message_ids=_strings(raw.get(b"message_ids")),
            handoff=raw[b"handoff"].decode() if b"handoff" in raw else None,
            handoff_paused_until_ms=int(raw.get(b"handoff_paused_until_ms", 0)),
            handoff_failures=int(raw.get(b"handoff_failures", 0)),
            handoff_notified=raw.get(b"handoff_notified") == b"1",
            held=_strings(raw.get(b"held")),
            read_shown=raw.get(b"read_shown") == b"1",
        )

    def encode(self) -> dict[FieldT, EncodableT]:
        """For HSET."""
        fields: dict[FieldT, EncodableT] = {
            "sent": self.sent,
            "attempts": self.attempts,
            "throttles": self.throttles,
            "admitted": 1 if self.admitted else 0,
        }
        if self.requests is not None:
            fields["requests"] = orjson.dumps(
                [{"account_id": r.account_id, "path": r.path, "payload": r.payload,
                  "platform": r.platform} | ({"tag": r.tag} if r.tag else {})
                 for r in self.requests]
            )  # fmt: skip
        if self.message_ids:
            fields["message_ids"] = orjson.dumps(self.message_ids)
        if self.handoff is not None:
            fields["handoff"] = self.handoff
            fields["handoff_paused_until_ms"] = self.handoff_paused_until_ms
            fields["handoff_failures"] = self.handoff_failures
            fields["handoff_notified"] = 1 if self.handoff_notified else 0
        # Always written: a save after the units were spent must clear an older list.
        fields["held"] = orjson.dumps(self.held)
        if self.read_shown:
            fields["read_shown"] = 1
        return fields


@dataclass(frozen=True, slots=True)
class Claim:
    """What deliver_check.lua says about one batch entry."""

    owned: bool
    """The entry is pending with this consumer: no other replica took it over, nobody acked it."""
    marked: bool
    """The batch finished as dead in another entry and was not delivered since: this entry
    is a replay of it (`lull dead replay`), to be delivered."""
    idle_ms: int
    """How long the entry had been idle (0 when not owned): no replica claims it before
    claim_idle_ms - idle_ms later."""
    paused: bool = False
    """The conversation was paused when asked (only asked with its pause key)."""
    delivered: int | None = None
    """The conversation's newest finished seq; None when it has no state at all."""
    user_last_ms: int = 0
    """When the user last wrote (the state's `user_last_ms`, Redis clock ms); 0: unknown."""


@dataclass
class Loaded:
    """What one round trip tells about a batch before it is handled."""

    delivered_seq: int
    """The conversation's newest finished seq. With no state at all (it expired: the batch
    is older than every retry horizon, common/lifetime.py) the batch's own seq: it counts as
    finished, skipped as a duplicate unless it is a marked replay."""
    state: SendState
    claim: Claim
    history: list[Any] = field(default_factory=list)


class DeliveryStore:
    """Reads and writes per-batch sender state; checks ownership; finishes with one Lua call."""

    def __init__(self, client: RedisClient, keys: Keys, group: str, consumer: str) -> None:
        self._client = client
        self._keys = keys
        self._group = group
        self._consumer = consumer
        self._batched = Coalescer(client)
        self._mark = LuaScript.read("deliver_mark", preludes=LIFE_PRELUDES)
        self._check = LuaScript.read("deliver_check", preludes=LEGACY_PRELUDE)

    async def load_scripts(self) -> None:
        """SCRIPT LOAD the check and finish scripts."""
        for script in (self._mark, self._check):
            await script.load(self._client)

    async def read(self, shard: int, entry_id: str, batch: Batch, history: bool) -> Loaded:
        """Delivered seq, send state, claim and history, in one round trip."""
        keys, conversation = self._keys, batch.conversation
        check = self._check_command(shard, entry_id, batch, conversation)
        commands: list[Command] = [("HGETALL", keys.send_state(shard, batch.batch_id)), check]
        if history:
            commands.append(("LRANGE", keys.history(conversation), 0, -1))
        results = await self._batched.execute(commands)
        if is_noscript(results[1]):
            # Redis restarted and forgot the script; the reads around it are still good.
            results[1] = await self._evalsha(check)
        for result in results:
            if isinstance(result, Exception):
                raise result
        claim = _claim(results[1])
        return Loaded(
            delivered_seq=batch.seq if claim.delivered is None else claim.delivered,
            state=SendState.decode(results[0]),
            claim=claim,
            history=[orjson.loads(item) for item in results[2]] if history else [],
        )

    async def check(
        self,
        shard: int,
        entry_id: str,
        batch: Batch,
        conversation: str | None = None,
        also: Sequence[Command] = (),
    ) -> Claim:
        """Whether this consumer still owns the entry, whether the batch is marked dead, and
        (given the conversation) whether it is paused. `also` (one-key commands) ride the
        same pipeline, after the check; a failed one raises."""
        command = self._check_command(shard, entry_id, batch, conversation)
        if not also:
            return _claim(await self._evalsha(command))
        results = await self._batched.execute([command, *also])
        if is_noscript(results[0]):
            await self.load_scripts()
            results[0] = (await self._batched.execute([command]))[0]
        for result in results:
            if isinstance(result, Exception):
                raise result
        return _claim(results[0])

    async def not_paused(self, conversation: str) -> bool:
        """Whether no human has the conversation now (presence asks before a refresh)."""
        [exists] = await self._batched.execute([("EXISTS", self._keys.pause(conversation))])
        if isinstance(exists, Exception):
            raise exists
        return int(exists) == 0

    async def execute(self, commands: list[Command]) -> None:
        """One-key commands (any slot) through the shared pipeline; raises the first error."""
        for result in await self._batched.execute(commands):
            if isinstance(result, Exception):
                raise result

    def _check_command(
        self, shard: int, entry_id: str, batch: Batch, conversation: str | None
    ) -> Command:
        keys = self._keys
        state = keys.conversation_state(batch.conversation)
        pause = () if conversation is None else (keys.pause(conversation),)
        legacy = LegacyKeys.of(keys, shard)
        return self._check.command(
            (
                keys.outbound(shard),
                state,
                legacy.dead_batches,
                legacy.delivered,
                legacy.seq,
                *pause,
            ),
            (self._group, entry_id, self._consumer, batch.batch_id, batch.seq, batch.conversation),
        )

    async def _evalsha(self, command: Command) -> Any:
        """An EVALSHA command through the shared pipeline; loads the scripts on NOSCRIPT."""
        [result] = await self._batched.execute([command])
        if is_noscript(result):
            # NOSCRIPT ran nothing, so calling again is safe.
            await self.load_scripts()
            [result] = await self._batched.execute([command])
        if isinstance(result, Exception):
            raise result
        return result

    async def latest_seq(self, shard: int, conversation: str) -> int:
        """The seq of the conversation's newest closed batch (0 when it has no state, or
        when its newest seq is a send API message's: whether a batch closed between is not
        known then, and a batch is superseded only by a batch)."""
        # A conversation 0.1 knew and 0.2 has not moved yet keeps its seq in 0.1's hash.
        state_key = self._keys.conversation_state(conversation)
        state_read = ("HMGET", state_key, "seq", "apiseq")
        legacy = LegacyKeys.of(self._keys, shard)
        results = await self._batched.execute([state_read, *legacy.reads(conversation)])
        for result in results:
            if isinstance(result, Exception):
                raise result
        (state, api_seq), *old = results
        if state is not None:
            return 0 if state == api_seq else int(state)
        moved = legacy_seqs(*old)
        return 0 if moved is None else moved[0]

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
        batch: Batch,
        history_items: list[bytes],
        keep: int,
        ttl_s: int,
        dead: bool = False,
        outcome: bytes = b"",
        outcomes_kept: int = 0,
        also: Sequence[Command] = (),
    ) -> list[Any]:
        """Mark finished (delivered, or dead when dead), XACK, drop send state and the
        in-flight mark, add history and the outcome record (lull conversation); the
        conversation's state, history and outcomes then expire ttl_s from now.

        `also` (one-key commands, any slot) ride in the same pipeline, before the finish
        (the mids an echo is told by are there before the in-flight mark is dropped); their
        replies are returned, a failed one as its exception: the caller decides what it
        costs."""
        keys, conversation = self._keys, batch.conversation
        legacy = LegacyKeys.of(keys, shard)
        command = self._mark.command(
            (
                keys.conversation_state(conversation),
                keys.outbound(shard),
                keys.send_state(shard, batch.batch_id),
                keys.history(conversation),
                *legacy.moved(),
                legacy.dead_batches,
                keys.outcomes(conversation),
                keys.send_inflight(conversation),
            ),
            (
                self._group,
                entry_id,
                conversation,
                batch.seq,
                keep,
                ttl_s,
                "dead" if dead else "done",
                batch.batch_id,
                outcome,
                outcomes_kept,
                *history_items,
            ),
        )
        results = await self._batched.execute([*also, command])
        if is_noscript(results[-1]):
            # Redis restarted and forgot the script; NOSCRIPT ran nothing: load, mark again.
            await self._evalsha(command)
        elif isinstance(results[-1], Exception):
            raise results[-1]
        return results[:-1]

    async def close(self) -> None:
        """Stop the shared pipeline."""
        await self._batched.close()


@dataclass(frozen=True, slots=True)
class DeadMark:
    """Where a batch that finished as dead is marked, so that its replay is delivered
    (lua/deliver_mark.lua): its conversation's state, when the batch names its conversation
    and seq, and 0.1's shard-wide hash by batch id."""

    places: tuple[tuple[str, str], ...]
    """(hash, field) pairs."""

    @classmethod
    def of(
        cls, keys: Keys, shard: int, batch_id: str, conversation: str | None, seq: int | None
    ) -> DeadMark:
        """The mark of one batch of shard."""
        places = [(LegacyKeys.of(keys, shard).dead_batches, batch_id)]
        if conversation is not None and seq is not None:
            places.insert(0, (keys.conversation_state(conversation), keys.dead_batch_field(seq)))
        return cls(tuple(places))

    def reads(self) -> list[Command]:
        """The commands that ask whether the mark is there (their replies go to `found`)."""
        return [("HEXISTS", key, name) for key, name in self.places]

    @staticmethod
    def found(replies: Sequence[Any]) -> bool:
        """Whether the replies of `reads` say the batch is marked."""
        return any(reply is True or reply == 1 for reply in replies)

    def forgets(self) -> list[Command]:
        """The commands that remove the mark (a dropped letter is not replayed)."""
        return [("HDEL", key, name) for key, name in self.places]


def _strings(raw: bytes | None) -> list[str]:
    """A stored JSON list of strings; a state saved before the field existed has none."""
    value = orjson.loads(raw) if raw else []
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _claim(reply: Any) -> Claim:
    owned, marked, idle_ms, paused, delivered, user_last_ms = reply
    return Claim(
        owned=int(owned) == 1,
        marked=int(marked) == 1,
        idle_ms=int(idle_ms),
        paused=int(paused) == 1,
        delivered=None if int(delivered) < 0 else int(delivered),
        user_last_ms=int(user_last_ms),
    )
