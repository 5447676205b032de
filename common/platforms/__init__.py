"""Platform normalisers: one webhook body in, the Events it holds and what was ignored out."""

from __future__ import annotations

from typing import Any

import orjson

from lull.common.events import MalformedBody, Parsed
from lull.common.platforms import instagram, messenger, whatsapp
from lull.common.platforms._shared import MALFORMED, name

__all__ = ["parse", "parse_document"]

UNKNOWN = "unknown"


def parse(body: bytes) -> Parsed:
    """Normalise one webhook body; raise MalformedBody only if it is not a JSON object."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise MalformedBody(f"not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise MalformedBody(f"not a JSON object: {type(doc).__name__}")
    return parse_document(doc)


def parse_document(doc: dict[str, Any]) -> Parsed:
    """Normalise one webhook body already decoded into a JSON object (ingest has one)."""
    match doc.get("object"):
        case "page":
            return messenger.parse(doc)
        case "instagram":
            return instagram.parse(doc)
        case "whatsapp_business_account":
            return whatsapp.parse(doc)
        case str(obj):
            return Parsed(ignored=[(UNKNOWN, f"object:{name(obj)}")])
        case _:
            return Parsed(ignored=[(UNKNOWN, MALFORMED)])
