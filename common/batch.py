"""The batch: one closed window, as the processor emits it and the sender delivers it.

window_close.lua writes it as JSON on the outbound stream (field `batch`); this is its one
typed model. `decode` checks what the sender relies on and keeps every field it does not
know in `extra`, so a batch written by a newer processor passes through unchanged;
`to_dict` gives the JSON object back with 0.1's field order, so what the bot receives is
byte for byte what 0.1 sent it, plus `version` after `close_reason` (always there: a batch
written before it existed is version 1). The published schema of what the bot receives is
common/contract/batch.schema.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from lull.common.contract import VERSION


@dataclass(frozen=True, slots=True)
class Message:
    """One user message in a batch."""

    mid: str
    event_time: int
    """The platform's timestamp, ms."""
    received_at: int
    """When ingest stored its webhook, ms."""
    kind: str
    text: str
    attachments: list[dict[str, Any]]
    raw: Any
    """The platform's own item, as it came."""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, item: object, where: str) -> Message:
        """From one element of the batch's `messages`; ValueError names what is wrong."""
        if not isinstance(item, dict):
            raise ValueError(f"{where} is not an object")
        known = {name: item.get(name) for name in _MESSAGE_FIELDS}
        mid, text, kind = known["mid"], known["text"], known["kind"]
        if not isinstance(mid, str) or not isinstance(kind, str) or not isinstance(text, str):
            raise ValueError(f"{where} lacks a string mid, kind or text")
        attachments = known["attachments"]
        return cls(
            mid=mid,
            event_time=_int(known["event_time"], f"{where}.event_time"),
            received_at=_int(known["received_at"], f"{where}.received_at"),
            kind=kind,
            text=text,
            attachments=attachments if isinstance(attachments, list) else [],
            raw=known["raw"],
            extra={k: v for k, v in item.items() if k not in _MESSAGE_FIELDS},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, fields in the order window_close.lua writes them."""
        return {
            "mid": self.mid,
            "event_time": self.event_time,
            "received_at": self.received_at,
            "kind": self.kind,
            "text": self.text,
            "attachments": self.attachments,
            "raw": self.raw,
            **self.extra,
        }


@dataclass(frozen=True, slots=True)
class Batch:
    """One conversational turn: the messages of one closed window, in event-time order."""

    batch_id: str
    """`<conversation>:<seq>`: what a bot dedupes retries by."""
    seq: int
    """Consecutive per conversation, delivered in this order. A conversation's state expires
    after LULL_CONVERSATION_TTL_S idle; each new life starts above a base from the Redis
    clock in ms (so seq is not 1 at first and never repeats an earlier life's)."""
    platform: str
    account_id: str
    """Page id, Instagram account id or WhatsApp phone number id."""
    user_id: str
    conversation: str
    """`platform:account_id:user_id`."""
    messages: list[Message]
    text: str
    """The messages' texts joined by a newline."""
    first_event_time: int
    last_event_time: int
    opened_at: int
    closed_at: int
    close_reason: str
    """gap, max_wait, max_messages, max_bytes or flush."""
    version: int = VERSION
    """The contract version (common/contract); a batch written before it existed is 1."""
    paused: bool = False
    """The conversation was paused (a human had it) when the window closed: the bot never
    answers this batch, whenever and however often it is delivered (window_close.lua writes
    `"paused": true` only then; a batch without the field is not paused)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields this version does not know, kept as they came."""

    @classmethod
    def decode(cls, raw: bytes | None) -> Batch:
        """From the outbound entry's `batch` field; ValueError says why it is not one."""
        if raw is None:
            raise ValueError("entry has no batch field")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"batch is not JSON: {exc}") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: object) -> Batch:
        """From the decoded JSON object; ValueError says what is missing or wrong."""
        if not isinstance(doc, dict):
            raise ValueError("batch JSON is not an object")
        missing = [name for name in _REQUIRED if name not in doc]
        if missing:
            raise ValueError("batch JSON lacks " + ", ".join(missing))
        seq = doc["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"bad seq {seq!r}")
        strings = {name: doc[name] for name in _STRINGS}
        bad = [name for name, value in strings.items() if not isinstance(value, str)]
        if bad:
            raise ValueError("batch " + ", ".join(bad) + " must be strings")
        messages = doc["messages"]
        if not isinstance(messages, list):
            raise ValueError("batch messages must be a list")
        text = doc.get("text", "")
        version = doc.get("version", VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"bad version {version!r}")
        return cls(
            batch_id=strings["batch_id"],
            seq=seq,
            platform=strings["platform"],
            account_id=strings["account_id"],
            user_id=strings["user_id"],
            conversation=strings["conversation"],
            messages=[Message.from_dict(m, f"messages[{i}]") for i, m in enumerate(messages)],
            text=text if isinstance(text, str) else "",
            first_event_time=_int(doc.get("first_event_time", 0), "first_event_time"),
            last_event_time=_int(doc.get("last_event_time", 0), "last_event_time"),
            opened_at=_int(doc.get("opened_at", 0), "opened_at"),
            closed_at=_int(doc.get("closed_at", 0), "closed_at"),
            close_reason=str(doc.get("close_reason", "")),
            version=version,
            paused=doc.get("paused") is True,
            extra={k: v for k, v in doc.items() if k not in _BATCH_FIELDS},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, fields in the order window_close.lua writes them."""
        return {
            "batch_id": self.batch_id,
            "seq": self.seq,
            "platform": self.platform,
            "account_id": self.account_id,
            "user_id": self.user_id,
            "conversation": self.conversation,
            "messages": [m.to_dict() for m in self.messages],
            "text": self.text,
            "first_event_time": self.first_event_time,
            "last_event_time": self.last_event_time,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "close_reason": self.close_reason,
            "version": self.version,
            # Only when set: an unpaused batch is byte for byte what 0.1 sent the bot.
            **({"paused": True} if self.paused else {}),
            **self.extra,
        }

    def encode(self) -> bytes:
        """The JSON bytes (what the bot receives, before lull adds `history`)."""
        return orjson.dumps(self.to_dict())


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"batch {where} must be a number")
    return int(value)


_MESSAGE_FIELDS = ("mid", "event_time", "received_at", "kind", "text", "attachments", "raw")
_REQUIRED = ("batch_id", "seq", "platform", "account_id", "user_id", "conversation", "messages")
_STRINGS = ("batch_id", "platform", "account_id", "user_id", "conversation")
_BATCH_FIELDS = (
    *_REQUIRED,
    "text",
    "first_event_time",
    "last_event_time",
    "opened_at",
    "closed_at",
    "close_reason",
    "version",
    "paused",
)
