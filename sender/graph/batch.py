"""Graph API batch requests: several calls of one account in one HTTP request.

What Meta documents (Graph API, "Batch Requests",
developers.facebook.com/docs/graph-api/batch-requests):
- `POST https://graph.facebook.com` with a `batch` parameter: a JSON array of calls, each
  `{"method", "relative_url", "body"}`, `body` form-encoded as for a plain POST, and an
  access token (here the `Authorization` header, as for single calls).
- at most 50 calls a batch; each call counts separately toward the API's rate limits;
  independent calls run in parallel (so two calls of one user never share a batch here);
- the answer is a JSON array in the calls' order, each `{"code", "headers", "body"}` with
  `body` a JSON-encoded string, or null for a call that did not complete (timed out): retry
  that call alone.

Which endpoints batch: the Messenger Send API (`/{page-id}/messages`, and Instagram with
Facebook Login, `/me/messages`) is a Graph API endpoint on graph.facebook.com. Instagram
with Instagram Login (graph.instagram.com) and the WhatsApp Cloud API do not document batch
requests: their calls go one by one (docs/batching.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import orjson

from lull.common.graph_request import GraphRequest
from lull.sender.graph.errors import GraphError
from lull.sender.graph.routes import INSTAGRAM_GRAPH

MAX_CALLS: Final = 50
"""Meta's limit of calls in one batch request."""
BATCHED_PLATFORMS: Final = frozenset({"messenger", "instagram"})
_INSTAGRAM_HOST: Final = urlsplit(INSTAGRAM_GRAPH).hostname


@dataclass(frozen=True, slots=True)
class CallAnswer:
    """One call's answer inside a batch: what a single call would have answered."""

    status: int
    body: object
    headers: Mapping[str, str]


def batchable(platform: str, base_url: str) -> bool:
    """Whether calls of platform sent to base_url may go in a batch request (Meta documents
    batching for the Graph API on graph.facebook.com, not for WhatsApp or graph.instagram.com)."""
    return platform in BATCHED_PLATFORMS and urlsplit(base_url).hostname != _INSTAGRAM_HOST


def batch_form(requests: Sequence[GraphRequest]) -> dict[str, str]:
    """The form of one batch request (the token goes in the header)."""
    calls = [
        {"method": "POST", "relative_url": request.path.lstrip("/"), "body": _form(request.payload)}
        for request in requests
    ]
    return {"batch": orjson.dumps(calls).decode(), "include_headers": "false"}


def _form(payload: Mapping[str, Any]) -> str:
    """A call's JSON body as the form a batched call carries: objects JSON-encoded, as the
    Graph API reads its parameters."""
    return urlencode(
        {key: value if isinstance(value, str) else orjson.dumps(value).decode()
         for key, value in payload.items()}
    )  # fmt: skip


def batch_answers(body: object, calls: int) -> list[CallAnswer | None]:
    """Each call's answer (None: the call did not complete); GraphError (temporary) when the
    answer is not an array of one item a call."""
    if not isinstance(body, list) or len(body) != calls:
        raise GraphError("temporary", "the batch answer is not an array of one item a call")
    return [_answer(item) for item in body]


def _answer(item: object) -> CallAnswer | None:
    if not isinstance(item, dict) or not isinstance(item.get("code"), int):
        return None
    raw = item.get("body")
    try:
        body: object = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        body = None
    headers: dict[str, str] = {}
    for header in item.get("headers") or []:
        if isinstance(header, dict) and isinstance(header.get("name"), str):
            headers[header["name"].lower()] = str(header.get("value", ""))
    return CallAnswer(item["code"], body, headers)
