"""The admin HTTP API: what `lull pause`, `lull resume` and `lull conversation` do, for a
CRM (Chatwoot, Zendesk and the like) that assigns conversations to human agents.

    GET  /conversations/{conversation}          the state (common/store/conversations.py)
    POST /conversations/{conversation}/pause    body optional: {"for_s": 3600, "by": "Ann"}
    POST /conversations/{conversation}/resume   body optional: {"by": "Ann"}

Each answers the conversation's state after the step as JSON. A conversation key holds ':'
(messenger:PAGE:PSID); sent as it is or URL-encoded (%3A), both reach the same route.

The send API (ingest/send_api.py, /v1/...) is served on the same site, with its own token.

It is off unless LULL_ADMIN_TOKEN is set: then nothing listens. With it, every request
needs `Authorization: Bearer <token>` (compared in constant time), and it is served on a
site of its own (LULL_ADMIN_HOST, LULL_ADMIN_PORT: loopback by default), never on the
public webhook port, which answers these paths 404.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from lull.common.conversation import Conversation
from lull.common.conversation_control import MAX_BY_CHARS, MAX_PAUSE_MS, ConversationControl
from lull.common.env import ConfigError, Env
from lull.common.http_log import app_runner
from lull.common.redis_conn import REDIS_FAILURES
from lull.ingest.body import client_max_size, read_body
from lull.ingest.send_api import MAX_BODY_BYTES as MAX_SEND_BODY_BYTES
from lull.ingest.send_api import SendApi, add_send_routes, bearer_matches, is_send_route

log = structlog.get_logger("lull.ingest")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8081
# A bearer token guessable in a night of tries is no lock; 32 hex digits is what
# `openssl rand -hex 16` prints.
MIN_TOKEN_CHARS: Final = 16
MAX_BODY_BYTES: Final = 4096
MAX_PAUSE_S: Final = MAX_PAUSE_MS // 1000
_PAUSE_KEYS: Final = frozenset({"for_s", "by"})
_RESUME_KEYS: Final = frozenset({"by"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class AdminSettings:
    """LULL_ADMIN_*: whether and where the admin API listens."""

    token: str | None = field(default=None, repr=False)
    """LULL_ADMIN_TOKEN; None: the API is off."""
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    read_timeout_ms: int = 10_000
    """Bound of a request body's arrival: ingest's LULL_INGEST_READ_TIMEOUT_MS."""

    @property
    def enabled(self) -> bool:
        """Whether the API is served at all."""
        return self.token is not None

    @classmethod
    def from_env(cls, env: Env, *, public_port: int, read_timeout_ms: int) -> AdminSettings:
        """Read and validate; the port may not be the public webhook port."""
        token = env.raw("LULL_ADMIN_TOKEN")
        if token is not None and (len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token)):
            env.report(
                ConfigError(
                    "LULL_ADMIN_TOKEN",
                    token,
                    f"at least {MIN_TOKEN_CHARS} characters without spaces "
                    "(openssl rand -hex 16), or unset to turn the admin API off",
                    secret=True,
                )
            )
        port = env.integer("LULL_ADMIN_PORT", DEFAULT_PORT, minimum=1, maximum=65535)
        if token is not None and port == public_port and env.ok("LULL_ADMIN_PORT"):
            env.report(
                ConfigError(
                    "LULL_ADMIN_PORT",
                    str(port),
                    f"a port other than LULL_INGEST_PORT ({public_port}): the admin API is "
                    "never served on the public webhook port",
                )
            )
        host = env.string("LULL_ADMIN_HOST", DEFAULT_HOST)
        return cls(token=token, host=host, port=port, read_timeout_ms=read_timeout_ms)


class AdminMetrics:
    """Admin API requests, by route and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "lull_ingest_admin_requests",
            "Admin API requests by action (conversation, pause, resume, unmatched) and status",
            ["action", "status"],
            registry=registry,
        )


ADMIN_SETTINGS = web.AppKey("admin_settings", AdminSettings)
TAKEOVER = web.AppKey("takeover", ConversationControl)
ADMIN_METRICS = web.AppKey("admin_metrics", AdminMetrics)


def create_admin_app(
    settings: AdminSettings,
    takeover: ConversationControl,
    metrics: AdminMetrics,
    send_api: SendApi | None = None,
) -> web.Application:
    """The admin API's app (settings.token must be set), with the send API's routes when
    given."""
    if settings.token is None:
        raise ValueError("the admin API needs a token")
    # The bound of the largest body a route reads; each route reads within its own bound.
    largest = max(MAX_BODY_BYTES, MAX_SEND_BODY_BYTES if send_api is not None else 0)
    app = web.Application(
        client_max_size=client_max_size(largest), middlewares=[_count, _authorize]
    )
    app[ADMIN_SETTINGS] = settings
    app[TAKEOVER] = takeover
    app[ADMIN_METRICS] = metrics
    app.router.add_get("/conversations/{conversation}", show, name="conversation")
    app.router.add_post("/conversations/{conversation}/pause", pause, name="pause")
    app.router.add_post("/conversations/{conversation}/resume", resume, name="resume")
    if send_api is not None:
        add_send_routes(app, send_api)
    return app


@contextlib.asynccontextmanager
async def serve_admin(
    settings: AdminSettings,
    takeover: ConversationControl,
    metrics: AdminMetrics,
    send_api: SendApi | None = None,
) -> AsyncIterator[None]:
    """Serve the admin API on its own site while the caller's context runs; nothing at all
    when there is no token."""
    if not settings.enabled:
        yield
        return
    runner = app_runner(create_admin_app(settings, takeover, metrics, send_api), "admin")
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info("admin API listening", host=settings.host, port=settings.port)
        yield
    finally:
        await runner.cleanup()


@web.middleware
async def _count(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.name or "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        request.app[ADMIN_METRICS].requests.labels(route, str(exc.status)).inc()
        raise
    request.app[ADMIN_METRICS].requests.labels(route, str(response.status)).inc()
    return response


@web.middleware
async def _authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_send_route(request):
        # Its own token (LULL_API_TOKEN): the admin token is not enough to send.
        return await handler(request)
    if not bearer_matches(request, request.app[ADMIN_SETTINGS].token or ""):
        return _error(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    return await handler(request)


async def show(request: web.Request) -> web.Response:
    """GET /conversations/{conversation}: the state."""
    return await _step(request, None)


async def pause(request: web.Request) -> web.Response:
    """POST /conversations/{conversation}/pause: pause for for_s, or like a human turn."""
    body = await _body(request, _PAUSE_KEYS)
    if isinstance(body, web.Response):
        return body
    for_s = body.get("for_s", 0)
    if "for_s" in body and not _seconds(for_s):
        return _error(400, f"for_s must be a whole number of seconds, 1 to {MAX_PAUSE_S}")
    by = _by(body)
    if by is None:
        return _error(400, f"by must be a string of at most {MAX_BY_CHARS} characters")

    async def step(takeover: ConversationControl, conversation: str) -> None:
        await takeover.pause(conversation, for_ms=int(for_s) * 1000, by=by)

    return await _step(request, step)


async def resume(request: web.Request) -> web.Response:
    """POST /conversations/{conversation}/resume: end the pause now."""
    body = await _body(request, _RESUME_KEYS)
    if isinstance(body, web.Response):
        return body
    by = _by(body)
    if by is None:
        return _error(400, f"by must be a string of at most {MAX_BY_CHARS} characters")

    async def step(takeover: ConversationControl, conversation: str) -> None:
        await takeover.resume(conversation, by=by)

    return await _step(request, step)


Step = Callable[[ConversationControl, str], Awaitable[None]]


async def _step(request: web.Request, step: Step | None) -> web.Response:
    try:
        conversation = Conversation.parse(request.match_info["conversation"]).key
    except ValueError as exc:
        return _error(400, str(exc))
    takeover = request.app[TAKEOVER]
    try:
        if step is not None:
            await step(takeover, conversation)
        state = await takeover.state(conversation)
    except REDIS_FAILURES as exc:
        log.warning("admin API: Redis failed", error=str(exc) or type(exc).__name__)
        return _error(503, "Redis is unavailable")
    if step is not None:
        log.info(
            "conversation changed by the admin API",
            conversation=conversation,
            action=request.match_info.route.name,
            paused=state.pause is not None,
        )
    return _json(200, state.to_dict())


async def _body(request: web.Request, allowed: frozenset[str]) -> dict[str, Any] | web.Response:
    """The JSON object body (empty: {}), or the 400 (408: it did not arrive in time) that
    says why not."""
    try:
        raw = await read_body(request, request.app[ADMIN_SETTINGS].read_timeout_ms, MAX_BODY_BYTES)
    except TimeoutError:
        # Nothing of a body that did not arrive is applied; aiohttp closes the connection.
        log.info("admin API: body too slow", remote=request.remote)
        return _error(408, "the body did not arrive in time")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        return _error(400, f"unknown keys {unknown}; allowed: {', '.join(sorted(allowed))}")
    return body


def _seconds(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_PAUSE_S


def _by(body: Mapping[str, Any]) -> str | None:
    by = body.get("by", "")
    if not isinstance(by, str) or len(by) > MAX_BY_CHARS:
        return None
    return by.strip() or "admin-api"


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json(status, {"error": message}, headers)


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )
