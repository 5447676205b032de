"""Where ingest stores a verified webhook body: the one inbound stream, or, with
LULL_INBOUND_SHARDS above 1, the part of each conversation it holds (the rules, and why
nothing is lost or applied twice: common/inbound_parts.py)."""

from __future__ import annotations

from typing import Any

import structlog

from lull.common.events import Parsed
from lull.common.inbound_parts import PART_FIELD, part_field, parts_of
from lull.common.platforms import parse_document
from lull.common.store.keys import Keys
from lull.ingest.writer import Fields

log = structlog.get_logger("lull.ingest")


class InboundRouter:
    """The copies (stream, fields) of one body, by the conversations it names."""

    def __init__(self, keys: Keys) -> None:
        self._parts = keys.inbound_parts
        self._streams = keys.inbound_streams(keys.inbound_parts)

    def copies(
        self, envelope: dict[str, Any], body: bytes, fields: Fields
    ) -> list[tuple[str, Fields]]:
        """One copy per part; a copy that is one of several carries PART_FIELD."""
        parts = self._parts
        if parts == 1:
            # Today's layout, byte for byte: no parse on the hot path.
            return [(self._streams[0], fields)]
        try:
            chosen = parts_of(parse_document(envelope), body, parts)
        except Exception as exc:  # the parsers never raise; if one did:
            # A signed body is never refused for its content: stored whole, where its bytes
            # hash to; the processor applies all of it and dead-letters what it cannot.
            log.warning("webhook body not split by conversation", error=type(exc).__name__)
            chosen = parts_of_nothing(body, parts)
        if len(chosen) == 1:
            return [(self._streams[chosen[0]], fields)]
        return [(self._streams[p], {**fields, PART_FIELD: part_field(p, parts)}) for p in chosen]


def parts_of_nothing(body: bytes, parts: int) -> list[int]:
    """The part of a body whose conversations are unknown."""
    return parts_of(Parsed(), body, parts)
