"""Which parts of a split inbound stream (LULL_INBOUND_SHARDS) a webhook body goes to, and
what of it each part's copy applies.

A body may hold events of several conversations (Meta batches entries; a WhatsApp number's
body may carry messages of several users). Ingest stores the raw body whole, once in the
part of each of its conversations, and marks a copy that is one of several with PART_FIELD;
the processor applies from such a copy only the events and turns of that part's
conversations. So every event of a conversation goes through one stream, in arrival order,
and the signed bytes stay as Meta sent them (a dead letter replays them as they were).

The copies are separate XADDs (on a cluster, on separate masters): not atomic. If ingest
stops or Redis fails between them, ingest has not answered 200, Meta delivers the whole
body again, and what was written twice is deduplicated by message id (window_apply.lua's
seen ids, the human turns' and the failures' marks) like any redelivery.

What a body holds outside any conversation (failed statuses; ignored items such as read and
delivery receipts, which are counted) is applied by its home copy only: the part of its
first conversation. A body of no conversation at all (a batch of statuses) goes whole to
the part its bytes hash to, so that statuses spread over the parts instead of piling on one.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

from lull.common.events import Parsed
from lull.common.store.keys import inbound_part

PART_FIELD = b"part"
"""Field of an inbound entry that is one of several copies of its body: b"<part>/<parts>"."""


def conversations(parsed: Parsed) -> list[str]:
    """The keys of the conversations a body names, each once: its events', then its turns'."""
    found = dict.fromkeys(event.conversation for event in parsed.events)
    for turn in parsed.turns:
        found.setdefault(turn.conversation)
    return list(found)


def parts_of(parsed: Parsed, body: bytes, parts: int) -> list[int]:
    """The parts a body is written to, each once, its home first."""
    found = dict.fromkeys(inbound_part(key, parts) for key in conversations(parsed))
    if not found:
        return [zlib.crc32(body) % parts]
    return list(found)


def part_field(part: int, parts: int) -> bytes:
    """PART_FIELD's value for the copy of part."""
    return f"{part}/{parts}".encode()


def read_part_field(value: bytes | None) -> tuple[int, int] | None:
    """(part, parts) from PART_FIELD; None when the entry is a whole body (no field, or one
    that does not parse: applying all of it is safe, duplicates are dropped by id)."""
    if value is None:
        return None
    part, _, parts = value.partition(b"/")
    try:
        number, count = int(part), int(parts)
    except ValueError:
        return None
    return (number, count) if 0 <= number < count else None


def only_part(parsed: Parsed, part: int, parts: int) -> Parsed:
    """What the copy of part applies: the events and turns of its conversations, and when
    it is the body's home copy, the rest too (failures, the ignored items' counts)."""
    home = parts_of(parsed, b"", parts)[0] == part
    events = [e for e in parsed.events if inbound_part(e.conversation, parts) == part]
    turns = [t for t in parsed.turns if inbound_part(t.conversation, parts) == part]
    if home:
        return replace(parsed, events=events, turns=turns)
    return Parsed(events=events, turns=turns)
