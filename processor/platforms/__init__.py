"""Platform normalisers: one webhook body in, the Events it holds and what was ignored out."""

from __future__ import annotations

import orjson

from lull.common.events import MalformedBody, Parsed
from lull.processor.platforms import instagram, messenger, whatsapp
from lull.processor.platforms._shared import MALFORMED, name

__all__ = ["parse"]

UNKNOWN = "unknown"


def parse(body: bytes) -> Parsed:
    """Normalise one webhook body; raise MalformedBody only if it is not a JSON object."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise MalformedBody(f"not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise MalformedBody(f"not a JSON object: {type(doc).__name__}")
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
