"""The fields of a contract schema, flattened: one row per field, named by its path.

Paths: `messages[].mid` (a field of each array item), `history[role=user].text` (a field of
the history items of one role), `handoff.reason` (a field of an object). The frozen copy of
v1 (tests/fixtures/contract/v1) and the tables of docs/contract.md are both checked against
these rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from lull.common.contract import schema_text


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the schema."""

    path: str
    type: str
    """The JSON type(s), `|`-joined; `=<value>` added when the field is a constant."""
    required: bool
    """Always present where its parent is."""
    title: str
    description: str
    example: Any


def schema(name: str) -> dict[str, Any]:
    """The schema `lull schema <name>` prints, decoded."""
    decoded: dict[str, Any] = orjson.loads(schema_text(name))
    return decoded


def fields(name: str) -> list[Field]:
    """Every field of schema `name`, parents before children, in the schema's order."""
    root = schema(name)
    rows: list[Field] = []
    _object(root, root, "", rows)
    return rows


def _object(root: dict[str, Any], node: dict[str, Any], prefix: str, rows: list[Field]) -> None:
    required = set(node.get("required", ()))
    for key, raw in node.get("properties", {}).items():
        child = _resolve(root, raw)
        path = prefix + key
        rows.append(
            Field(
                path=path,
                type=_type(child),
                required=key in required,
                title=child.get("title", ""),
                description=child.get("description", ""),
                example=child.get("examples", [None])[0],
            )
        )
        _nested(root, child, path, rows)


def _nested(root: dict[str, Any], node: dict[str, Any], path: str, rows: list[Field]) -> None:
    """The fields inside an object or inside the items of an array."""
    if "properties" in node:
        _object(root, node, path + ".", rows)
    items = node.get("items")
    if items is None:
        return
    item = _resolve(root, items)
    variants = [_resolve(root, v) for v in item.get("oneOf", ())]
    if variants and all("role" in v.get("properties", {}) for v in variants):
        # History items: one shape per role.
        for variant in variants:
            role = variant["properties"]["role"]["const"]
            _object(root, variant, f"{path}[role={role}].", rows)
    else:
        _nested(root, item, path + "[]", rows)


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, name = node["$ref"].split("/")
        node = root["$defs"][name]
    return node


def _type(node: dict[str, Any]) -> str:
    kind = node.get("type", "any")
    shown = "|".join(kind) if isinstance(kind, list) else str(kind)
    if "const" in node:
        shown += "=" + orjson.dumps(node["const"]).decode()
    return shown
