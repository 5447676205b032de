"""The fake Graph API's batch requests, in the shape Meta documents (Graph API, "Batch
Requests", developers.facebook.com/docs/graph-api/batch-requests).

`POST /` (or `/{version}`) with a `batch` parameter (form field or JSON body member): a JSON
array of at most 50 calls `{"method", "relative_url", "body"}`, `body` form-encoded. The
token is the request's (header or `access_token`) unless a call's relative_url carries its
own. Each call is answered as the same call alone would be (`messages_call`), in parallel as
Meta runs independent calls; the answer is an array in the calls' order of `{"code",
"body"}` (plus `headers` unless `include_headers=false`), `body` a JSON string.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import orjson
from aiohttp import web

MAX_CALLS: Final = 50
# Meta's refusal of a batch of more than 50 calls.
TOO_MANY: Final = "(#100) Too many requests in batch message. Maximum batch size is 50"

CallAnswerer = Callable[[str, str | None, object], Awaitable[web.Response]]
"""(node, token, parsed JSON body) -> the answer of one `/{node}/messages` call."""


def batch_calls(form: Mapping[str, Any]) -> list[object] | str:
    """The calls of a batch request's parameters, or why they are refused."""
    raw = form.get("batch")
    try:
        calls = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        return "(#100) param batch must be a JSON array"
    if not isinstance(calls, list) or not calls:
        return "(#100) param batch must be a non-empty JSON array"
    if len(calls) > MAX_CALLS:
        return TOO_MANY
    return calls


async def answer_batch(
    calls: list[object], token: str | None, include_headers: bool, answer: CallAnswerer
) -> list[dict[str, Any]]:
    """Every call's answer, in order."""
    return list(
        await asyncio.gather(*(_one(call, token, include_headers, answer) for call in calls))
    )


async def _one(
    call: object, token: str | None, include_headers: bool, answer: CallAnswerer
) -> dict[str, Any]:
    node = _node(call)
    if node is None:
        return _refused("(#100) each call needs method POST and a relative_url to /{node}/messages")
    assert isinstance(call, dict)
    url = urlsplit(str(call["relative_url"]))
    own_token = dict(parse_qsl(url.query)).get("access_token")
    body = call.get("body", "")
    params = dict(parse_qsl(body, keep_blank_values=True)) if isinstance(body, str) else {}
    response = await answer(node, own_token or token, {k: _value(v) for k, v in params.items()})
    raw = response.body if isinstance(response.body, bytes) else b"null"
    item: dict[str, Any] = {"code": response.status, "body": raw.decode()}
    if include_headers:
        item["headers"] = [{"name": "Content-Type", "value": "application/json"}]
    return item


def _node(call: object) -> str | None:
    """The node of a `POST [{version}/]{node}/messages` call, None for any other call."""
    if not isinstance(call, dict) or str(call.get("method", "")).upper() != "POST":
        return None
    parts = urlsplit(str(call.get("relative_url", ""))).path.strip("/").split("/")
    if parts and parts[0].startswith("v") and len(parts) == 3:
        parts = parts[1:]
    return parts[0] if len(parts) == 2 and parts[1] == "messages" and parts[0] else None


def _value(text: str) -> object:
    """A form value as the Graph API reads it: a JSON object or array when it is one."""
    if text.startswith(("{", "[")):
        try:
            parsed: object = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        return parsed
    return text


def _refused(message: str) -> dict[str, Any]:
    error = {"message": message, "type": "OAuthException", "code": 100, "fbtrace_id": "FAKE"}
    return {"code": 400, "body": orjson.dumps({"error": error}).decode()}
