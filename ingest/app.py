"""The ingest aiohttp application: Meta's handshake, signed webhook POSTs, health, metrics.

The public (webhook) app serves /webhook, /healthz and /readyz; /metrics only with
LULL_INGEST_PUBLIC_METRICS=1. Metrics live on a port of their own (metrics_app), which the
service starts beside it (serve_metrics_port): tests build many apps and bind none of it.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web

from lull.common import signing as signature
from lull.common.accounts_reload import LiveAccounts
from lull.common.conversation_control import ConversationControl
from lull.common.http_admin import admin_app, serve
from lull.common.metrics import metrics_handler
from lull.common.outside_text import cut, printable
from lull.common.pause_times import PauseTimes
from lull.common.redis_conn import REDIS_FAILURES, RedisClient, connect
from lull.common.store.api_messages import ApiMessageStore
from lull.common.store.pauses import PauseStore
from lull.ingest.admin_api import AdminMetrics, serve_admin
from lull.ingest.body import client_max_size, read_body
from lull.ingest.metrics import IngestMetrics
from lull.ingest.routing import InboundRouter
from lull.ingest.send_api import SendApi
from lull.ingest.settings import IngestSettings
from lull.ingest.writer import Fields, StoreFailed, StreamWriter

log = structlog.get_logger("lull.ingest")

SETTINGS = web.AppKey("settings", IngestSettings)
METRICS = web.AppKey("metrics", IngestMetrics)
REDIS: web.AppKey[RedisClient] = web.AppKey("redis")  # one Redis or a cluster client
WRITER = web.AppKey("writer", StreamWriter)
ROUTER = web.AppKey("router", InboundRouter)
# The writer flush last warned about in insecure mode; a list because the app is frozen.
WARNED = web.AppKey("warned_flush", list[int])
PAUSE_TIMES = web.AppKey("pause_times", PauseTimes)

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_CHALLENGE_CHARS = 256
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(settings: IngestSettings, metrics: IngestMetrics | None = None) -> web.Application:
    """Build the app; Redis and the stream writer start and stop with it."""
    app = web.Application(
        client_max_size=client_max_size(settings.max_body_bytes), middlewares=[_count_requests]
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics or IngestMetrics()
    app[WARNED] = [-1]
    app[ROUTER] = InboundRouter(settings.common.keys())
    accounts = None if settings.accounts is None else LiveAccounts(settings.accounts)
    app[PAUSE_TIMES] = PauseTimes(settings.pause, accounts)
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_accounts_ctx)
    app.router.add_get("/webhook", verify_handshake)
    app.router.add_post("/webhook", receive_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if settings.public_metrics:
        app.router.add_get("/metrics", metrics_handler(app[METRICS].registry))
    return app


def metrics_app(app: web.Application) -> web.Application:
    """/metrics, /healthz and /readyz over app's registry and Redis client (once app started)."""
    return admin_app(app[METRICS].registry, app[REDIS])


def serve_metrics_port(app: web.Application) -> None:
    """While app runs, serve metrics_app on LULL_METRICS_HOST:LULL_INGEST_METRICS_PORT."""
    app.cleanup_ctx.append(_metrics_port_ctx)


async def _metrics_port_ctx(app: web.Application) -> AsyncIterator[None]:
    # After _redis_ctx (cleanup contexts run in order), so /readyz has the client to ping.
    settings = app[SETTINGS]
    stop = await serve(metrics_app(app), settings.metrics_host, settings.metrics_port)
    yield
    await stop()


def serve_admin_port(app: web.Application) -> None:
    """While app runs, serve the admin API (ingest/admin_api.py) on its own site, when
    LULL_ADMIN_TOKEN is set."""
    app.cleanup_ctx.append(_admin_port_ctx)


async def _admin_port_ctx(app: web.Application) -> AsyncIterator[None]:
    # After _redis_ctx: the admin API shares ingest's Redis client.
    settings = app[SETTINGS]
    if not settings.admin.enabled:
        yield
        return
    common = settings.common
    keys = common.keys()
    # Both pause by the conversation's account's times, as the accounts file says now.
    pause_times = app[PAUSE_TIMES]
    takeover = ConversationControl(app[REDIS], keys, pause_times)
    send_api = SendApi(
        settings.api,
        keys,
        ApiMessageStore(app[REDIS], keys),
        PauseStore(app[REDIS], keys, settings.pause),
        pause_times,
    )
    async with serve_admin(settings.admin, takeover, AdminMetrics(app[METRICS].registry), send_api):
        yield


async def _accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    """While app runs, read the accounts file again on SIGHUP and when it changes (as the
    processor and the sender do): the pauses started after a reload follow it."""
    accounts = app[PAUSE_TIMES].accounts
    if accounts is None:
        yield
        return
    stop = asyncio.Event()
    watch = asyncio.create_task(accounts.watch(stop), name="accounts")
    # Let it take SIGHUP over before the app serves: a SIGHUP's default ends a process.
    await asyncio.sleep(0)
    yield
    stop.set()
    await watch


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = connect(
        settings.common.effective_redis_url,
        timeout_s=settings.redis_timeout_ms / 1000,
        cluster=settings.common.redis_cluster,
    )
    writer = StreamWriter(client, settings.common.keys().inbound())
    app[REDIS] = client
    app[WRITER] = writer
    yield
    # In-flight requests have finished by now (aiohttp waits for them before cleanup).
    await writer.stop()
    await client.aclose()


@web.middleware
async def _count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _count(request, exc.status)
        raise
    _count(request, response.status)
    return response


def _count(request: web.Request, status: int) -> None:
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    request.app[METRICS].request_counter(name, status).inc()


async def verify_handshake(request: web.Request) -> web.Response:
    """GET /webhook: echo hub.challenge when Meta presents our verify token."""
    query = request.query
    token = query.get("hub.verify_token", "")
    expected = request.app[SETTINGS].verify_token
    ok = query.get("hub.mode") == "subscribe" and hmac.compare_digest(
        token.encode(), expected.encode()
    )
    challenge = query.get("hub.challenge")
    if not ok or challenge is None:
        mode = printable(cut(query.get("hub.mode") or "", 50))
        log.info("handshake refused", mode=mode, has_challenge=bool(challenge))
        return web.Response(status=403, text="forbidden")
    if len(challenge) > MAX_CHALLENGE_CHARS:
        # Meta's challenge is a number of a few digits; a long one is no handshake of Meta's.
        log.info("handshake refused", reason="challenge_too_long", chars=len(challenge))
        return web.Response(status=400, text="challenge too long")
    return web.Response(text=challenge, content_type="text/plain")


def _reject(request: web.Request, status: int, reason: str) -> web.Response:
    request.app[METRICS].rejected.labels(reason).inc()
    log.info("webhook refused", status=status, reason=reason, remote=request.remote)
    return web.json_response({"error": reason}, status=status)


async def receive_webhook(request: web.Request) -> web.Response:
    """POST /webhook: verify, validate the envelope, store the raw bytes, then answer 200."""
    started = time.perf_counter()
    settings = request.app[SETTINGS]
    metrics = request.app[METRICS]
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        return _reject(request, 413, "body_too_large")
    try:
        body = await read_body(request, settings.read_timeout_ms, settings.max_body_bytes)
    except web.HTTPRequestEntityTooLarge:
        return _reject(request, 413, "body_too_large")
    except TimeoutError:
        return _reject(request, 408, "read_timeout")

    if settings.insecure_skip_signature:
        verified = "skipped"
    else:
        failure = signature.check(request.headers.get(SIGNATURE_HEADER), body, settings.app_secrets)
        if failure is not None:
            metrics.signature_failures.labels(failure).inc()
            log.info("webhook refused", status=401, reason=f"signature_{failure}")
            return web.json_response({"error": "bad_signature"}, status=401)
        verified = "ok"

    envelope, problem = read_envelope(body)
    if envelope is None:
        return _reject(request, 400, problem or "no_envelope")

    writer = request.app[WRITER]
    fields: Fields = {b"body": body, b"received_at": int(time.time() * 1000), b"sig": verified}
    copies = request.app[ROUTER].copies(envelope, body, fields)
    # No timer per request: the Redis socket timeout (LULL_INGEST_REDIS_TIMEOUT_MS) fails
    # the whole pipelined flush, and with it every request waiting on it, with a 503.
    try:
        entry_ids = await writer.add_copies(copies)
    except StoreFailed as exc:
        metrics.redis_errors.inc()
        log.warning("webhook not stored, answering 503", error=str(exc) or type(exc).__name__)
        return web.json_response({"error": "store_unavailable"}, status=503)
    if verified == "skipped":
        _warn_unverified(request, writer)
    metrics.body_bytes.observe(len(body))
    metrics.store_seconds.observe(time.perf_counter() - started)
    log.debug("webhook stored", entries=entry_ids, bytes=len(body))
    return web.Response(status=200)


def envelope_problem(body: bytes) -> str | None:
    """Why body is not a Meta envelope (object: a string, entry: a list), or None."""
    return read_envelope(body)[1]


def read_envelope(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(the envelope, None), or (None, why body is not a Meta envelope)."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, "not_json"
    if not isinstance(envelope, dict):
        return None, "not_an_object"
    if not isinstance(envelope.get("object"), str):
        return None, "no_object"
    if not isinstance(envelope.get("entry"), list):
        return None, "no_entry_list"
    return envelope, None


def _warn_unverified(request: web.Request, writer: StreamWriter) -> None:
    # One warning per pipelined batch, not per request: loud, but bounded under load.
    warned = request.app[WARNED]
    if warned[0] != writer.flushes:
        warned[0] = writer.flushes
        log.warning(
            "stored webhook bodies without checking their signature",
            batch=writer.last_batch_size,
            setting="LULL_INSECURE_SKIP_SIGNATURE=1",
        )


async def healthz(_request: web.Request) -> web.Response:
    """The process is alive."""
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    """Redis answers within the ingest timeout."""
    try:
        async with asyncio.timeout(request.app[SETTINGS].redis_timeout_ms / 1000):
            await request.app[REDIS].ping()
    except REDIS_FAILURES as exc:
        return web.json_response({"redis": "unreachable", "error": type(exc).__name__}, status=503)
    return web.json_response({"redis": "ok"})
