"""Messages the send API accepted (ingest/send_api.py): accepted in one atomic step
(lua/api_accept.lua) as an entry of the conversation's outbound stream, in its seq order,
beside a state record the sender's finish updates and `GET /v1/messages/{id}` reads.

The entry is a batch without messages whose `api` field carries the send: the sender
delivers it like any batch (order, limits, retries, dead letters, history), skipping the
bot. Its batch id is `api:<message id>`.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from lull.common.batch import Batch
from lull.common.coalesce import Command
from lull.common.conversation import Conversation
from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.legacy import LegacyKeys
from lull.common.store.scripts import LIFE_PRELUDES, LuaScript

Sender = Literal["bot", "human"]
API_FIELD: Final = "api"
"""The batch field that makes an outbound entry a send API message."""
CLOSE_REASON: Final = "api"
_ID = re.compile(r"^([0-9]{1,5})-([0-9a-f]{24})$")
RECORD_TTL_S: Final = 86_400
"""How long a message's state and its Idempotency-Key are kept: a day, like Stripe's keys;
a POST retried later than that is a new message."""
# A reason quotes Meta or the bot: bounded like a dead letter's.
MAX_REASON_CHARS: Final = 1000


@dataclass(frozen=True, slots=True)
class ApiSend:
    """What an API message asks the sender to do (the entry's `api` field)."""

    message_id: str
    sender: Sender
    """bot: sent as the bot's; human: a human's turn (the bot stays paused)."""
    force: bool
    """Sent although a human has the conversation (as bot)."""
    replies: list[Any]
    """The replies, in the reply contract's shape, as the API checked them."""

    @property
    def obeys_pause(self) -> bool:
        """Whether a human's pause stops it (a bot's message, not forced)."""
        return self.sender == "bot" and not self.force

    @classmethod
    def of(cls, batch: Batch) -> ApiSend | None:
        """The send an outbound entry carries; None for a batch of the user's messages."""
        value = batch.extra.get(API_FIELD)
        if not isinstance(value, dict):
            return None
        sender: Sender = "human" if value.get("as") == "human" else "bot"
        replies = value.get("replies")
        return cls(
            message_id=str(value.get("id", "")),
            sender=sender,
            force=value.get("force") is True,
            replies=replies if isinstance(replies, list) else [],
        )


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the accept step did."""

    message_id: str
    status: Literal["accepted", "repeated", "paused"]
    """accepted now; repeated: the key accepted message_id before; paused: refused, nothing
    written (message_id is '')."""


def new_message_id(keys: Keys, conversation: str) -> str:
    """A fresh message id: the conversation's shard, then 96 random bits."""
    return f"{keys.shard_of(conversation)}-{secrets.token_hex(12)}"


def message_shard(keys: Keys, message_id: str) -> int | None:
    """The shard a message id names; None when it is no message id of this deployment."""
    match = _ID.match(message_id)
    if match is None or int(match.group(1)) >= keys.shards:
        return None
    return int(match.group(1))


class ApiMessageStore:
    """Accepts send API messages and reads their state."""

    def __init__(self, client: RedisClient, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._accept = LuaScript.read("api_accept", preludes=LIFE_PRELUDES)

    async def load_scripts(self) -> None:
        """SCRIPT LOAD the accept script."""
        await self._accept.load(self._client)

    async def accept(
        self,
        conversation: Conversation,
        idempotency_key: str,
        send: ApiSend,
        *,
        conversation_ttl_s: int,
    ) -> Accepted:
        """Store the message in its conversation's order (once per idempotency key)."""
        keys, key = self._keys, conversation.key
        shard = keys.shard_of(key)
        now_ms = int(time.time() * 1000)
        head = b'{"batch_id":' + orjson.dumps(f"{API_FIELD}:{send.message_id}")
        tail = orjson.dumps(
            {
                "platform": conversation.platform,
                "account_id": conversation.account_id,
                "user_id": conversation.user_id,
                "conversation": key,
                "messages": [],
                "text": "",
                "first_event_time": 0,
                "last_event_time": 0,
                "opened_at": now_ms,
                "closed_at": now_ms,
                "close_reason": CLOSE_REASON,
                "version": 1,
                API_FIELD: {
                    "id": send.message_id,
                    "as": send.sender,
                    "force": send.force,
                    "replies": send.replies,
                },
            }
        )
        # '{...}' becomes ',...}': what follows the seq the script puts in.
        tail = b"," + tail[1:]
        reply = await self._accept.call(
            self._client,
            (
                keys.api_idempotency(key, idempotency_key),
                keys.api_message(shard, send.message_id),
                keys.conversation_state(key),
                keys.outbound(shard),
                keys.pause(key),
                *LegacyKeys.of(keys, shard).moved(),
            ),
            (
                send.message_id,
                key,
                head,
                tail,
                RECORD_TTL_S,
                conversation_ttl_s,
                1 if send.obeys_pause else 0,
            ),
        )
        message_id, status = reply
        text = message_id.decode() if isinstance(message_id, bytes) else str(message_id)
        statuses: dict[int, Literal["accepted", "repeated", "paused"]] = {
            1: "accepted",
            0: "repeated",
            2: "paused",
        }
        return Accepted(text, statuses[int(status)])

    async def read(self, message_id: str) -> dict[str, Any] | None:
        """A message's state record as the API shows it; None when unknown (or expired)."""
        shard = message_shard(self._keys, message_id)
        if shard is None:
            return None
        raw = await self._client.hgetall(self._keys.api_message(shard, message_id))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        record: dict[str, Any] = {
            "id": message_id,
            "state": fields.get("state", "queued"),
            "conversation": fields.get("conversation", ""),
            "accepted_at": int(fields.get("accepted_ms", "0")),
        }
        if "message_ids" in fields:
            record["message_ids"] = orjson.loads(fields["message_ids"])
        if "reason" in fields:
            record["reason"] = fields["reason"]
        if "finished_ms" in fields:
            record["finished_at"] = int(fields["finished_ms"])
        return record


def finished_commands(
    keys: Keys,
    shard: int,
    send: ApiSend,
    state: str,
    *,
    message_ids: list[str],
    reason: str = "",
) -> list[Command]:
    """The writes that record a message's end (sent, failed, paused, window_closed), for
    the sender's finish to run beside its own step. They keep the record's expiry."""
    key = keys.api_message(shard, send.message_id)
    fields: list[Any] = [
        "state", state, "finished_ms", int(time.time() * 1000),
        "message_ids", orjson.dumps(message_ids),
    ]  # fmt: skip
    if reason:
        fields += ["reason", reason[:MAX_REASON_CHARS]]
    # HSET then EXPIRE: a record that expired meanwhile comes back for as long again.
    return [("HSET", key, *fields), ("EXPIRE", key, RECORD_TTL_S)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
