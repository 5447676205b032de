"""The send API: replies a bot, a flow or a help desk sends in its own time (docs/api.md).

    POST /v1/conversations/{conversation}/messages   {"replies": [...], "as": "bot"|"human",
                                                      "force": false}; Idempotency-Key header
    GET  /v1/messages/{id}                           the message's state
    GET  /v1/openapi.json                            this API's OpenAPI document

Served on the admin API's site (ingest/admin_api.py) with a token of its own,
LULL_API_TOKEN: the admin token pauses conversations, this one speaks to users. Without it
the routes answer 404 saying the API is off. A message is stored before the 202 (one atomic
step, common/store/api_messages.py) and joins its conversation's order on the outbound
stream; the sender delivers it like a batch's replies, without calling the bot.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

import orjson
import structlog
from aiohttp import web

from lull.common.access_tokens import load_tokens
from lull.common.conversation import Conversation
from lull.common.env import ConfigError, Env
from lull.common.lifetime import conversation_ttl_from_env
from lull.common.pause_times import PauseTimes
from lull.common.redis_conn import REDIS_FAILURES
from lull.common.replies import parse_replies
from lull.common.store.api_messages import ApiMessageStore, ApiSend, new_message_id
from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseAction, PauseStore
from lull.ingest.body import read_body

log = structlog.get_logger("lull.ingest")

PREFIX: Final = "/v1/"
MAX_BODY_BYTES: Final = 64 * 1024
"""A send's replies: a few texts of Meta's longest (4096 characters) and their options."""
MAX_IDEMPOTENCY_KEY_CHARS: Final = 255
MIN_TOKEN_CHARS: Final = 16
ANY_ACCOUNT: Final = "*"
_SEND_KEYS: Final = frozenset({"replies", "as", "force"})
_SENDERS: Final = ("bot", "human")
HUMAN_REASON: Final = "api_human"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ApiSettings:
    """LULL_API_TOKEN and what the send API checks a message against."""

    token: str | None = field(default=None, repr=False)
    """LULL_API_TOKEN; None: the send API is off (its routes answer 404)."""
    accounts: frozenset[str] = frozenset()
    """The accounts LULL_ACCESS_TOKENS has a token for ('*': any)."""
    conversation_ttl_s: int = 8 * 86_400
    read_timeout_ms: int = 10_000

    @property
    def enabled(self) -> bool:
        """Whether the send API answers."""
        return self.token is not None

    def knows(self, account_id: str) -> bool:
        """Whether the sender has a token to send as this account."""
        return ANY_ACCOUNT in self.accounts or account_id in self.accounts

    @classmethod
    def from_env(cls, env: Env, *, admin_token: str | None, read_timeout_ms: int) -> ApiSettings:
        """Read and validate; the token needs the admin site and must differ from its token."""
        token = env.raw("LULL_API_TOKEN")
        if token is not None:
            problem = None
            if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
                problem = (
                    f"at least {MIN_TOKEN_CHARS} characters without spaces "
                    "(openssl rand -hex 16), or unset to turn the send API off"
                )
            elif admin_token is None:
                problem = "the send API is served on the admin port: set LULL_ADMIN_TOKEN too"
            elif hmac.compare_digest(token.encode(), admin_token.encode()):
                problem = "a token other than LULL_ADMIN_TOKEN (the admin token cannot send)"
            if problem is not None:
                env.report(ConfigError("LULL_API_TOKEN", token, problem, secret=True))
        accounts: frozenset[str] = frozenset()
        tokens_text = env.raw("LULL_ACCESS_TOKENS")
        if token is not None and tokens_text:
            try:
                accounts = frozenset(load_tokens(tokens_text))
            except ValueError as exc:
                env.report(ConfigError("LULL_ACCESS_TOKENS", tokens_text, str(exc), secret=True))
        return cls(
            token=token,
            accounts=accounts,
            conversation_ttl_s=conversation_ttl_from_env(env),
            read_timeout_ms=read_timeout_ms,
        )


@dataclass
class SendApi:
    """What the send API's handlers use."""

    settings: ApiSettings
    keys: Keys
    store: ApiMessageStore
    pauses: PauseStore
    pause_times: PauseTimes | None = None
    """Each account's pause times for a human's message; None: the store's for all."""

    def knows(self, account_id: str) -> bool:
        """Whether the sender has a token to send as this account: LULL_ACCESS_TOKENS', or
        the accounts file's as it is now (the sender reads the same file)."""
        if self.settings.knows(account_id):
            return True
        live = None if self.pause_times is None else self.pause_times.accounts
        accounts_file = None if live is None else live.current.file
        return accounts_file is not None and accounts_file.names_token(account_id)


SEND_API = web.AppKey("send_api", SendApi)


def add_send_routes(app: web.Application, api: SendApi) -> None:
    """The send API's routes, on the admin app; they check their own token."""
    app[SEND_API] = api
    app.router.add_post("/v1/conversations/{conversation}/messages", _guarded(send), name="v1_send")
    app.router.add_get("/v1/messages/{message_id}", _guarded(show), name="v1_message")
    app.router.add_get("/v1/openapi.json", _guarded(openapi), name="v1_openapi")


def is_send_route(request: web.Request) -> bool:
    """Whether the request is the send API's (authorized by LULL_API_TOKEN, not the admin's)."""
    return (request.match_info.route.name or "").startswith("v1_")


def bearer_matches(request: web.Request, expected: str) -> bool:
    """Whether the request carries `Authorization: Bearer <expected>` (constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Both sides as bytes: compare_digest refuses non-ASCII str, and a header may hold any.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), expected.encode()
    )


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        settings = request.app[SEND_API].settings
        if settings.token is None:
            return _error(404, "the send API is off: LULL_API_TOKEN is not set")
        if not bearer_matches(request, settings.token):
            return _error(
                401, "a bearer token (LULL_API_TOKEN) is required", {"WWW-Authenticate": "Bearer"}
            )
        return await handler(request)

    return guarded


async def send(request: web.Request) -> web.Response:
    """POST /v1/conversations/{conversation}/messages: store the message, answer 202."""
    api = request.app[SEND_API]
    try:
        conversation = Conversation.parse(request.match_info["conversation"])
    except ValueError as exc:
        return _error(400, str(exc))
    if not api.knows(conversation.account_id):
        return _error(
            422,
            f"unknown account {conversation.account_id!r}: neither LULL_ACCESS_TOKENS nor "
            "the accounts file has a token to send as it",
        )
    key = request.headers.get("Idempotency-Key")
    problem = _key_problem(key)
    if problem is not None:
        return _error(400, problem)
    assert key is not None
    body = await _body(request, api.settings.read_timeout_ms)
    if isinstance(body, web.Response):
        return body
    message_id = new_message_id(api.keys, conversation.key)
    message = _message(body, message_id)
    if isinstance(message, str):
        return _error(400, message)
    try:
        if message.sender == "human":
            # Before the accept: a repeated POST pauses again (the pause only grows), where
            # a pause after it would be lost to a crash between the two.
            await api.pauses.apply(
                conversation.key,
                PauseAction.HUMAN,
                reason=HUMAN_REASON,
                by="send-api",
                settings=None
                if api.pause_times is None
                else api.pause_times.of(conversation.account_id),
            )
        accepted = await api.store.accept(
            conversation, key, message, conversation_ttl_s=api.settings.conversation_ttl_s
        )
    except REDIS_FAILURES as exc:
        log.warning("send API: Redis failed", error=str(exc) or type(exc).__name__)
        return _error(503, "Redis is unavailable")
    if accepted.status == "paused":
        return _error(
            409,
            "a human has this conversation (it is paused): send as human, or force",
        )
    repeated = accepted.status == "repeated"
    log.info(
        "send API message accepted",
        conversation=conversation.key,
        id=accepted.message_id,
        repeated=repeated,
        sender=message.sender,
    )
    headers = {"Idempotent-Replayed": "true"} if repeated else None
    return _json(202, {"id": accepted.message_id}, headers)


async def show(request: web.Request) -> web.Response:
    """GET /v1/messages/{id}: the message's state."""
    api = request.app[SEND_API]
    message_id = request.match_info["message_id"]
    try:
        record = await api.store.read(message_id)
    except REDIS_FAILURES as exc:
        log.warning("send API: Redis failed", error=str(exc) or type(exc).__name__)
        return _error(503, "Redis is unavailable")
    if record is None:
        return _error(404, "no such message (or it is older than a day)")
    return _json(200, record)


async def openapi(_request: web.Request) -> web.Response:
    """GET /v1/openapi.json: the document that describes these routes."""
    return web.Response(body=openapi_document(), content_type="application/json")


def openapi_document() -> bytes:
    """The send API's OpenAPI document (ingest/openapi.schema.json)."""
    return resources.files("lull").joinpath("ingest", "openapi.schema.json").read_bytes()


def documented_routes() -> set[tuple[str, str]]:
    """(method, path) of every operation the OpenAPI document describes."""
    doc = json.loads(openapi_document())
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


def _key_problem(key: str | None) -> str | None:
    if key is None or not key:
        return "an Idempotency-Key header is required (a retried POST with it sends once)"
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not all("!" <= c <= "~" for c in key):
        return (
            f"the Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII "
            "characters without spaces"
        )
    return None


async def _body(request: web.Request, timeout_ms: int) -> dict[str, Any] | web.Response:
    try:
        raw = await read_body(request, timeout_ms, MAX_BODY_BYTES)
    except TimeoutError:
        log.info("send API: body too slow", remote=request.remote)
        return _error(408, "the body did not arrive in time")
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    return body


def _message(body: Mapping[str, Any], message_id: str) -> ApiSend | str:
    """The send the body asks for, or what is wrong with it."""
    unknown = sorted(set(body) - _SEND_KEYS)
    if unknown:
        return f"unknown keys {unknown}; allowed: {', '.join(sorted(_SEND_KEYS))}"
    sender = body.get("as", "bot")
    if sender not in _SENDERS:
        return 'as must be "bot" or "human"'
    force = body.get("force", False)
    if not isinstance(force, bool):
        return "force must be true or false"
    replies = body.get("replies")
    try:
        # The sender's own parser: what it would refuse from a bot is refused here.
        parsed = parse_replies(replies)
    except ValueError as exc:
        return str(exc)
    if not parsed:
        return "replies must hold at least one reply"
    assert isinstance(replies, list)
    return ApiSend(message_id=message_id, sender=sender, force=force, replies=replies)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json(status, {"error": message}, headers)


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )
