"""Typed accessors over parsed JSON: a field of the wrong type reads as absent, never raises."""

from __future__ import annotations

from typing import Any

MALFORMED = "malformed"

# Lua numbers are doubles: a time beyond 2**53 ms could not be compared exactly in the scripts.
MAX_TIME_MS = 2**53

# Key, field and object names become metric labels: bound them whatever the body holds.
MAX_NAME_CHARS = 64


def dict_at(obj: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """obj[key] if it is a JSON object, else None (also when obj is None, so lookups chain)."""
    if obj is None:
        return None
    value = obj.get(key)
    return value if isinstance(value, dict) else None


def list_at(obj: dict[str, Any], key: str) -> list[Any] | None:
    """obj[key] if it is a JSON array, else None."""
    value = obj.get(key)
    return value if isinstance(value, list) else None


def items_at(
    obj: dict[str, Any], key: str, platform: str, ignored: list[tuple[str, str]]
) -> list[Any]:
    """obj[key] as an array: absent reads as empty, any other type is counted as malformed."""
    value = obj.get(key)
    if isinstance(value, list):
        return value
    if value is not None:
        ignored.append((platform, MALFORMED))
    return []


def str_at(obj: dict[str, Any] | None, key: str) -> str | None:
    """obj[key] if it is a string, else None."""
    if obj is None:
        return None
    value = obj.get(key)
    return value if isinstance(value, str) else None


def id_at(obj: dict[str, Any] | None, key: str) -> str | None:
    """obj[key] if it is a non-empty string (ids, kinds), else None."""
    if obj is None:
        return None
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def text_at(obj: dict[str, Any] | None, key: str) -> str:
    """obj[key] if it is a string, else "": a missing text is an empty one."""
    if obj is None:
        return ""
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def ms_at(obj: dict[str, Any], key: str) -> int | None:
    """obj[key] as a time in ms if it is an integer in range, else None."""
    value = obj.get(key)
    # bool is an int subclass: `true` is not a timestamp.
    if type(value) is int and 0 <= value < MAX_TIME_MS:
        return value
    return None


def seconds_as_ms_at(obj: dict[str, Any], key: str) -> int | None:
    """obj[key], seconds as a digit string (or an int), converted to ms; else None."""
    value = obj.get(key)
    if isinstance(value, str):
        # The length bound also keeps int() clear of its 4300-digit ValueError.
        if not (value.isascii() and value.isdigit() and len(value) <= 13):
            return None
        value = int(value)
    elif type(value) is not int:
        return None
    ms = value * 1000
    return ms if 0 <= ms < MAX_TIME_MS else None


def name(value: str) -> str:
    """A body-supplied name cut to a bounded metric label."""
    return value[:MAX_NAME_CHARS]


def change_name(change: Any) -> str:
    """The ignored kind of an entry[].changes[] item: "change:<field>", or malformed."""
    field = id_at(change, "field") if isinstance(change, dict) else None
    return MALFORMED if field is None else f"change:{name(field)}"
