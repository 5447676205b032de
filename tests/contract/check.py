"""The bot's contract in tests: validators of its published schemas, and the check the test
Redis runs at each test's teardown (tests/conftest.py), so that every batch the test suite
produces is checked against the schema the bot is promised."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from jsonschema import Draft202012Validator

from lull.common.contract import schema_text

# Marks a test that puts on an outbound stream, on purpose, what is no valid batch: the
# teardown check leaves its namespace alone.
EXEMPT_MARKER = "not_a_batch"


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A validator of the schema `lull schema <name>` prints (checked to be a valid schema)."""
    schema = orjson.loads(schema_text(name))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(name: str, document: object) -> list[str]:
    """Every way `document` breaks schema `name`, one line each ([] when it is valid)."""
    errors = sorted(validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{_where(error.absolute_path)}: {error.message}" for error in errors]


async def outbound_problems(client: aioredis.Redis, namespace: str) -> list[str]:
    """Every batch on the namespace's outbound streams, as the bot receives it (with its
    conversation's history as it is now), checked against the batch schema."""
    histories = await _histories(client, namespace)
    found: list[str] = []
    async for stream in client.scan_iter(match=f"{namespace}:*:out", count=1000, _type="STREAM"):
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(stream))
        for entry_id, fields in entries:
            where = f"{stream.decode()} {entry_id.decode()}"
            try:
                doc = orjson.loads(fields.get(b"batch", b""))
            except orjson.JSONDecodeError as exc:
                found.append(f"{where}: batch is not JSON: {exc}")
                continue
            if not isinstance(doc, dict):
                found.append(f"{where}: batch is not an object")
                continue
            if "api" in doc:
                # A send API message (common/store/api_messages.py): the bot never gets it.
                continue
            conversation = doc.get("conversation")
            history = histories.get(conversation, []) if isinstance(conversation, str) else []
            found += [f"{where}: {p}" for p in problems("batch", {**doc, "history": history})]
    return found


async def _histories(client: aioredis.Redis, namespace: str) -> dict[str, list[Any]]:
    """Each conversation's history list, by conversation (read from the key's name, which
    common/store/keys.py builds as `<shard tag>:h:<conversation>`)."""
    histories: dict[str, list[Any]] = {}
    async for key in client.scan_iter(match=f"{namespace}:*:h:*", count=1000, _type="LIST"):
        _, _, conversation = key.decode().partition("}:h:")
        items = cast(list[bytes], await client.lrange(key, 0, -1))
        histories[conversation] = [orjson.loads(item) for item in items]
    return histories


def _where(path: Iterable[Any]) -> str:
    return "/".join(str(part) for part in path) or "(top)"
