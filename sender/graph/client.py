"""The Graph Send API client: one POST per message, failures sorted by kind.

Messenger: `POST /{version}/{page-id}/messages`; WhatsApp Cloud API:
`POST /{version}/{phone-number-id}/messages`; Instagram: `/{version}/me/messages` (Facebook
Login) or `/{version}/{ig-id}/messages` on graph.instagram.com (Instagram Login). Where each
goes is graph_routes', request building graph_payload's, error sorting graph_errors'; this
module re-exports what callers need so they import one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from lull.common.access_tokens import DEFAULT_ACCOUNT
from lull.common.graph_request import GraphRequest
from lull.sender.graph.batch import CallAnswer, batch_answers, batch_form
from lull.sender.graph.errors import ErrorKind, GraphError, MissingToken, classify
from lull.sender.graph.payload import build_requests
from lull.sender.graph.routes import GraphRoutes

__all__ = [
    "ErrorKind",
    "GraphClient",
    "GraphError",
    "GraphRequest",
    "GraphRoutes",
    "MissingToken",
    "build_requests",
    "classify",
]


class GraphClient:
    """Sends GraphRequests with each account's token; returns ids or raises GraphError."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        routes: GraphRoutes,
        tokens: Mapping[str, str],
        timeout_s: float,
    ) -> None:
        self._session = session
        self._routes = routes
        # Read per call, not copied: the accounts file's tokens change on a reload.
        self._tokens = tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        # Never the tokens: a repr ends up in logs and tracebacks.
        return f"GraphClient({self._routes!r}, accounts={sorted(self._tokens)})"

    async def post(self, request: GraphRequest) -> str:
        """Send one message; its Graph message id, or GraphError (kind says what to do)."""
        return message_id_of(*await self.exchange(request))

    async def post_action(self, request: GraphRequest) -> None:
        """Send a call that creates no message (a sender action, a WhatsApp read receipt):
        Meta answers it with `recipient_id` or `success`, never a message id."""
        action_done(*await self.exchange(request))

    async def post_batch(
        self, account_id: str, platform: str, requests: list[GraphRequest]
    ) -> list[CallAnswer | None]:
        """Send requests (at most 50, one account's) in one Graph API batch request; each
        call's answer in order (None: Meta did not complete it). GraphError when the batch
        request itself fails: then none of its calls is known to have been made."""
        base_url = self._routes.route(platform, account_id).base_url
        # multipart/form-data, as Meta's examples (`curl -F batch=…`): the batch's JSON goes
        # as it is, where a urlencoded form quotes every character of it (3% of the CPU).
        form = aiohttp.MultipartWriter("form-data")
        for name, value in batch_form(requests).items():
            form.append(value).set_content_disposition("form-data", name=name)
        status, body, response_headers = await self._post(
            account_id, base_url.rstrip("/") + "/", form, ""
        )
        if not 200 <= status < 300:
            raise classify(status, body, response_headers)
        return batch_answers(body, len(requests))

    async def exchange(self, request: GraphRequest) -> tuple[int, object, Mapping[str, str]]:
        """POST the request with its account's token: status, parsed JSON body, headers."""
        base_url = self._routes.route(request.platform, request.account_id).base_url
        return await self._post(
            request.account_id,
            base_url.rstrip("/") + request.path,
            orjson.dumps(request.payload),
            "application/json",
        )

    async def _post(
        self, account_id: str, url: str, data: bytes | aiohttp.MultipartWriter, content_type: str
    ) -> tuple[int, object, Mapping[str, str]]:
        """POST data to url with account_id's token: status, parsed JSON body, headers."""
        # "*" is the token for every account without one of its own (one system-user token).
        token = self._tokens.get(account_id) or self._tokens.get(DEFAULT_ACCOUNT)
        if not token:
            raise MissingToken(account_id)
        headers = {"Authorization": f"Bearer {token}"}
        if isinstance(data, bytes):
            headers["Content-Type"] = content_type
        try:
            async with self._session.post(
                url, data=data, headers=headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                status, response_headers = response.status, response.headers
        except TimeoutError as exc:
            # Meta may still have sent it; the caller decides whether a duplicate is worse.
            raise GraphError("temporary", f"no answer within {self._timeout_s:g} s") from exc
        except aiohttp.ClientResponseError as exc:
            # Only when the session raises for status itself; sort it like any answer.
            raise classify(exc.status, None, exc.headers or {}) from exc
        except aiohttp.ClientError as exc:
            raise GraphError("temporary", f"{type(exc).__name__}: {exc}") from exc
        return status, _json(raw), response_headers


def message_id_of(status: int, body: object, headers: Mapping[str, str]) -> str:
    """A message send's answer: its message id, or the GraphError it means."""
    if 200 <= status < 300:
        message_id = _message_id(body)
        if message_id is not None:
            return message_id
    raise classify(status, body, headers)


def action_done(status: int, body: object, headers: Mapping[str, str]) -> None:
    """A call that creates no message: None when it was done, else the GraphError it means."""
    if not 200 <= status < 300:
        raise classify(status, body, headers)


def _json(raw: bytes) -> object:
    try:
        parsed: object = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return parsed


def _message_id(body: object) -> str | None:
    """Messenger answers `message_id`; WhatsApp answers `messages[0].id`; a call that sends
    no message (pass_thread_control) answers `{"success": true}`: "" then (no id)."""
    if not isinstance(body, dict):
        return None
    if body.get("success") is True and "message_id" not in body:
        return ""
    message_id: Any = body.get("message_id")
    messages = body.get("messages")
    if message_id is None and isinstance(messages, list) and messages:
        first = messages[0]
        message_id = first.get("id") if isinstance(first, dict) else None
    return message_id if isinstance(message_id, str) and message_id else None
