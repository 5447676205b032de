"""docs/contract.md lists exactly the schemas' fields, and its example batches are what
lull makes of the webhook fixtures (tests/contract/doc.py says how to regenerate them)."""

from __future__ import annotations

import os

import pytest
import redis.asyncio as aioredis

from lull.common.contract import SCHEMAS
from tests.contract.check import problems
from tests.contract.doc import (
    DOC,
    WRITE_ENV,
    blocks,
    example,
    example_json,
    replace_blocks,
    table,
    table_paths,
)
from tests.contract.examples import TURNS, example_batches, without_clock
from tests.contract.fields import fields


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_table_lists_exactly_the_schema_fields(name: str) -> None:
    if os.environ.get(WRITE_ENV):
        DOC.write_text(replace_blocks(DOC.read_text(), {f"fields {name}": table(name)}))
    body = blocks(DOC.read_text())[f"fields {name}"]
    assert table_paths(body) == [field.path for field in fields(name)]
    # Meanings, types and examples too, as the schema says them.
    assert body == table(name), f"{WRITE_ENV}=1 pytest {__file__} rewrites the table"


async def test_the_example_batches_are_what_lull_makes(
    redis: aioredis.Redis, base_env: dict[str, str]
) -> None:
    made = await example_batches(redis, base_env)
    if os.environ.get(WRITE_ENV):
        bodies = {f"example {platform}": example(batch) for platform, batch in made.items()}
        DOC.write_text(replace_blocks(DOC.read_text(), bodies))
    shown = blocks(DOC.read_text())
    for platform in TURNS:
        batch = example_json(shown[f"example {platform}"])
        assert problems("batch", batch) == []
        assert batch["platform"] == platform and batch["history"]
        assert without_clock(batch) == without_clock(made[platform]), (
            f"{WRITE_ENV}=1 pytest {__file__} rewrites the examples"
        )
