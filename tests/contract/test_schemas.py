"""The published schemas are valid JSON Schema (draft 2020-12) and explain every field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from lull.common.contract import SCHEMAS
from tests.contract.fields import schema


def _properties(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, schema) of every property declared anywhere in the document ($defs too)."""
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            yield f"{where}/{key}", value
        for key, value in node.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _properties(value, f"{where}/{index}")


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_schema_is_draft_2020_12_with_an_id_and_a_title(name: str) -> None:
    document = schema(name)
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == f"urn:lull:contract:{name}:v1"
    assert document["title"] and document["description"]


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_field_has_a_title_a_description_and_a_type(name: str) -> None:
    found = list(_properties(schema(name)))
    assert len(found) >= 10
    lacking = [
        where
        for where, node in found
        if not (node.get("title") and node.get("description") and "type" in node)
    ]
    assert lacking == []


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_example_in_the_schema_is_valid_for_its_field(name: str) -> None:
    document = schema(name)
    for where, node in _properties(document):
        bare = {k: v for k, v in node.items() if k not in ("examples", "$ref")}
        for example in node.get("examples", []):
            assert Draft202012Validator(bare).is_valid(example), (where, example)
