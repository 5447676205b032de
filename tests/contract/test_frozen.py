"""The rule of the contract: within a version it changes only by adding optional fields.

tests/fixtures/contract/v1 holds each v1 field's type and whether it is required, frozen
when v1 was published. It is never regenerated: a field removed, retyped, made required or
optional, or a new required field, fails here. A new optional field passes (list it in
docs/contract.md; it needs no entry here).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from lull.common.batch import Batch
from lull.common.contract import SCHEMAS, VERSION
from tests.conftest import FIXTURES
from tests.contract.fields import fields, schema

FROZEN = FIXTURES / "contract" / "v1"


def breaks(frozen: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How `now` (path -> {type, required}) breaks the frozen contract; [] when it keeps it."""
    found = [f"{path} removed" for path in frozen if path not in now]
    found += [
        f"{path} was {was}, is {now[path]}"
        for path, was in frozen.items()
        if path in now and now[path] != was
    ]
    found += [f"{path} added as required" for path, f in now.items()
              if path not in frozen and f["required"]
              and not _in_new_object(path, frozen, now)]  # fmt: skip
    return found


def _in_new_object(path: str, frozen: dict[str, Any], now: dict[str, Any]) -> bool:
    """The field belongs to an object that is itself new (and optional): a bot that never
    sends the object never meets the field, so requiring it inside breaks nothing."""
    parent = path.rsplit(".", 1)[0] if "." in path else ""
    return parent in now and parent not in frozen and not now[parent]["required"]


def _now(name: str) -> dict[str, Any]:
    return {f.path: {"type": f.type, "required": f.required} for f in fields(name)}


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_schema_keeps_every_v1_field_as_it_was(name: str) -> None:
    frozen = orjson.loads((FROZEN / f"{name}.json").read_bytes())
    assert breaks(frozen, _now(name)) == []


def test_each_kind_of_break_is_caught() -> None:
    frozen = _now("batch")
    assert breaks(frozen, dict(frozen)) == []
    optional_added = {**frozen, "channel": {"type": "string", "required": False}}
    assert breaks(frozen, optional_added) == []

    removed = {k: v for k, v in frozen.items() if k != "messages[].kind"}
    assert breaks(frozen, removed) == ["messages[].kind removed"]
    retyped = {**frozen, "seq": {"type": "string", "required": True}}
    assert breaks(frozen, retyped) == [
        "seq was {'type': 'integer', 'required': True}, is {'type': 'string', 'required': True}"
    ]
    loosened = {**frozen, "text": {"type": "string", "required": False}}
    assert len(breaks(frozen, loosened)) == 1
    required_added = {**frozen, "channel": {"type": "string", "required": True}}
    assert breaks(frozen, required_added) == ["channel added as required"]


def test_the_version_is_one_number_everywhere() -> None:
    assert schema("batch")["properties"]["version"]["const"] == VERSION == 1
    assert Batch.__dataclass_fields__["version"].default == VERSION
