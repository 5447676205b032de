"""Dead letters: read them, send them back where they came from, or drop them.

A dead letter is the original entry's fields plus the metadata the consumer adds
(common/consumer/settle.py, dead_letter_fields). Replay XADDs the original fields to the
letter's `_source` stream, then XDELs the letter. XADD first: a crash in between replays a
letter twice at worst, which the normal dedupe absorbs (the processor drops message ids it
has applied; the sender delivers a dead batch's replay once, then skips copies as
duplicates), and never loses one. The two streams are in different hash slots on Redis
Cluster, so they are two commands, not one MULTI.

The sender remembers the batches it finished as dead (common/store/deliveries.py,
DeadMark) so that their replay is delivered; dropping a sender letter removes that mark
too. The mark expires with the conversation's state (LULL_CONVERSATION_TTL_S): a letter
replayed later is skipped as a duplicate, since nothing tells any more whether it was
answered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.typing import EncodableT, FieldT

from lull.common.redis_conn import RedisClient
from lull.common.store.deliveries import DeadMark
from lull.common.store.keys import Keys
from lull.common.store.streams import next_id, text

META_FIELDS = (
    b"_source",
    b"_id",
    b"_group",
    b"_consumer",
    b"_reason",
    b"_deliveries",
    b"_dead_at",
)
"""What dead_letter_fields adds to an entry's own fields; a replay leaves these out."""
PAGE = 100
"""Letters read (and replayed) per round trip."""
PREVIEW_CHARS = 60
_ENTRY_ID = re.compile(r"[0-9]+-[0-9]+")


def is_entry_id(value: str) -> bool:
    """True for a full stream id `ms-seq` (a bare `ms` would name a range)."""
    return _ENTRY_ID.fullmatch(value) is not None


def iso_time(ms: int | None) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC, "-" when unknown."""
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of the dead-letter stream."""

    id: str
    """Its id in the dead-letter stream (what show, replay and drop take)."""
    fields: dict[bytes, bytes]

    def meta(self, name: bytes) -> str:
        """A metadata field as text ("" when absent)."""
        value = self.fields.get(name)
        return "" if value is None else value.decode(errors="replace")

    @property
    def source(self) -> str:
        """The stream the entry was read from."""
        return self.meta(b"_source")

    @property
    def reason(self) -> str:
        """Why it was dead-lettered."""
        return self.meta(b"_reason")

    @property
    def deliveries(self) -> int | None:
        """The group's delivery count when it died."""
        return _int(self.fields.get(b"_deliveries"))

    @property
    def dead_at_ms(self) -> int | None:
        """When it died, ms since the epoch."""
        return _int(self.fields.get(b"_dead_at"))

    @property
    def payload(self) -> dict[bytes, bytes]:
        """The original entry's fields: what a replay writes back."""
        return {name: value for name, value in self.fields.items() if name not in META_FIELDS}

    def batch(self) -> dict[str, Any] | None:
        """The sender's batch (field `batch`) when it is JSON naming a batch id."""
        raw = self.fields.get(b"batch")
        if raw is None:
            return None
        try:
            batch = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(batch, dict) or not isinstance(batch.get("batch_id"), str):
            return None
        return batch

    def preview(self, chars: int = PREVIEW_CHARS) -> str:
        """A short one-line summary of the content (a batch's text, or a raw body)."""
        batch = self.batch()
        if batch is not None:
            shown = f"{batch.get('conversation', '?')} #{batch.get('seq', '?')}: "
            shown += str(batch.get("text", ""))
        else:
            raw = self.fields.get(b"body") or b" ".join(self.payload.values())
            shown = raw.decode(errors="replace")
        flat = " ".join(shown.split())
        return flat if len(flat) <= chars else flat[: chars - 1] + "…"

    def summary(self) -> dict[str, Any]:
        """The fields of `lull dead list --json`."""
        return {
            "id": self.id,
            "source": self.source,
            "original_id": self.meta(b"_id"),
            "group": self.meta(b"_group"),
            "consumer": self.meta(b"_consumer"),
            "reason": self.reason,
            "deliveries": self.deliveries,
            "dead_at": iso_time(self.dead_at_ms),
            "dead_at_ms": self.dead_at_ms,
            "preview": self.preview(),
        }


@dataclass
class Replayed:
    """What a replay did."""

    done: list[tuple[DeadLetter, str]] = field(default_factory=list)
    """(letter, id of the new entry in its source stream)."""
    refused: list[tuple[DeadLetter, str]] = field(default_factory=list)
    """(letter, why): left in the dead-letter stream."""
    skipped: list[DeadLetter] = field(default_factory=list)
    """Sender letters whose batch is not marked dead (delivered since, or dead-lettered
    before marks existed): replayed, but the sender will skip them as duplicates."""


class DeadLetters:
    """The dead-letter stream of one namespace."""

    def __init__(self, client: RedisClient, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._stream = keys.dead()

    async def count(self) -> int:
        """Letters in the stream."""
        return int(await self._client.xlen(self._stream))

    async def first(self, limit: int) -> list[DeadLetter]:
        """The oldest `limit` letters."""
        return _letters(await self._client.xrange(self._stream, count=limit))

    async def get(self, letter_id: str) -> DeadLetter | None:
        """One letter by its id in the dead-letter stream, None when there is none."""
        found = _letters(await self._client.xrange(self._stream, letter_id, letter_id))
        return found[0] if found else None

    async def marked(self, letter: DeadLetter) -> bool | None:
        """For a sender letter: is its batch marked dead (a replay will be delivered)?
        None for other letters."""
        mark = self._mark(letter)
        if mark is None:
            return None
        pipe = self._client.pipeline(transaction=False)
        for command in mark.reads():
            pipe.execute_command(*command)
        return DeadMark.found(await pipe.execute())

    async def replay(self, letters: Sequence[DeadLetter]) -> Replayed:
        """XADD each letter's original fields to its source stream, then XDEL the letter."""
        result = Replayed()
        for start in range(0, len(letters), PAGE):
            await self._replay_page(letters[start : start + PAGE], result)
        return result

    async def replay_all(self) -> Replayed:
        """Replay every letter present now; letters written meanwhile (a replay that failed
        again) are left for the next run, so this always ends."""
        result = Replayed()
        newest: Any = await self._client.xrevrange(self._stream, count=1)
        if not newest:
            return result
        last = text(newest[0][0])
        start = "-"
        while True:
            page = _letters(await self._client.xrange(self._stream, start, last, count=PAGE))
            if not page:
                return result
            await self._replay_page(page, result)
            if page[-1].id == last:
                return result
            start = next_id(page[-1].id)

    async def drop(self, letter: DeadLetter) -> bool:
        """XDEL the letter, then forget the sender's dead mark of its batch; False if gone."""
        if not await self._client.xdel(self._stream, letter.id):
            return False
        mark = self._mark(letter)
        for command in [] if mark is None else mark.forgets():
            await self._client.execute_command(*command)
        return True

    def target(self, letter: DeadLetter) -> str | None:
        """The stream a replay writes to: the letter's source, when it is one lull reads."""
        known = {*self._keys.all_inbound(), *self._keys.all_outbound()}
        return letter.source if letter.source in known else None

    def _mark(self, letter: DeadLetter) -> DeadMark | None:
        """Where a sender letter's batch may be marked dead; None for other letters."""
        batch = letter.batch()
        outbound = self._keys.all_outbound()
        if batch is None or letter.source not in outbound:
            return None
        conversation, seq = batch.get("conversation"), batch.get("seq")
        return DeadMark.of(
            self._keys,
            outbound.index(letter.source),
            str(batch["batch_id"]),
            conversation if isinstance(conversation, str) else None,
            seq if isinstance(seq, int) else None,
        )

    def _ready(
        self, letters: Sequence[DeadLetter], result: Replayed
    ) -> list[tuple[DeadLetter, str]]:
        """(letter, target stream) of the letters that can be replayed; the rest refused."""
        ready: list[tuple[DeadLetter, str]] = []
        for letter in letters:
            target = self.target(letter)
            if target is None:
                source = letter.source or "(none)"
                why = f"source {source} is not a stream of this namespace and shard count"
                result.refused.append((letter, why))
            elif not letter.payload:
                result.refused.append((letter, "no fields of the original entry"))
            else:
                ready.append((letter, target))
        return ready

    async def _replay_page(self, letters: Sequence[DeadLetter], result: Replayed) -> None:
        ready = self._ready(letters, result)
        if not ready:
            return
        marks = [(letter, mark) for letter, _ in ready if (mark := self._mark(letter))]
        pipe = self._client.pipeline(transaction=False)
        for _, mark in marks:
            for command in mark.reads():
                pipe.execute_command(*command)
        for letter, target in ready:
            pipe.xadd(target, _widened(letter.payload))
        answers: list[Any] = await pipe.execute(raise_on_error=False)
        at = 0
        for letter, mark in marks:
            if not DeadMark.found(answers[at : at + len(mark.places)]):
                result.skipped.append(letter)
            at += len(mark.places)
        added: list[tuple[DeadLetter, str]] = []
        for (letter, _), answer in zip(ready, answers[at:], strict=True):
            if isinstance(answer, Exception):
                result.refused.append((letter, f"XADD failed: {answer}"))
            else:
                added.append((letter, text(answer)))
        if added:
            # Only letters whose copy Redis confirmed are deleted.
            await self._client.xdel(self._stream, *(letter.id for letter, _ in added))
            result.done.extend(added)


def _letters(rows: Any) -> list[DeadLetter]:
    return [DeadLetter(text(entry_id), dict(fields)) for entry_id, fields in rows or []]


def _widened(fields: dict[bytes, bytes]) -> dict[FieldT, EncodableT]:
    # For xadd's parameter type (dict is invariant in its key type).
    return {name: value for name, value in fields.items()}


def _int(value: bytes | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None
