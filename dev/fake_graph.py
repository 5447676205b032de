"""A fake Graph Send API: checks tokens and request shapes, records what it accepted.

`POST /{version}/{account_id}/messages` takes both the Messenger/Instagram and the
WhatsApp Cloud API shape and answers like Meta does (`message_id`, or
`messages[0].id`). A WhatsApp request must address the user by phone number in `to` or by
business-scoped user id in `recipient`, each in its documented format. Control endpoints
for tests and local runs:
- `GET /_sent`: every accepted request, `{account_id, payload, message_id, at_ms}`; the
  ids count on from the clock (µs since the epoch), so no two runs answer the same id;
- `GET /_thread_control`: every accepted `POST /{version}/{node}/pass_thread_control`
  (Handover Protocol), `{account_id, payload, order, at_ms}`; `order` counts on from the
  message ids, so a test sees whether it came after a message;
- `DELETE /_sent`: forget them (and the thread control calls);
- `GET /_presence`, `DELETE /_presence`: the same for read receipts and typing
  (Messenger/Instagram `sender_action`, WhatsApp `status: read` with or without a
  `typing_indicator`), kept apart from messages and logged ("typing");
- `POST /_script`: `{"errors": [{"status", "code", "message", "subcode", "details",
  "count", "headers"}], "latency_ms"}`; the next requests answer those errors in order
  (`details` becomes WhatsApp's `error_data.details`), and every request waits latency_ms
  first. A new script replaces the previous one.
  Scripted errors apply after the token check, so a bad token never uses one up. They and
  the latency apply to messages only; presence calls have their own, `FakeGraph.
  presence_errors` and `presence_latency_ms` (`"presence_errors"`, `"presence_latency_ms"`
  in the same script body).
- `POST /` or `POST /{version}` with `batch`: a Graph API batch request (dev/fake_graph_batch.py),
  each call answered as it would be alone; `FakeGraph.batch_requests` counts them, and
  `"batch_errors"` in a script refuses whole batch requests first.
- `POST /_user_wrote`: `{"user": id, "at_ms": ms}`, when the user last wrote; from then on
  a message to that user more than 24 hours later gets Meta's window error unless it is a
  tagged (Messenger, Instagram) or template (WhatsApp) message, as dev/fake_graph_window.py
  says. A user the fake was not told about is always in the window.

WhatsApp's media endpoints (`GET /{version}/{media-id}` and the download URL it answers),
a CDN (`GET /cdn/{name}`) and an OpenAI-compatible `POST /v1/audio/transcriptions` are
dev/fake_media.py's and dev/fake_transcribe.py's; they hold `lull simulate --media`'s demo
picture and voice note, for `make run`.

`me` in the path is the account whose token the request carries, as on the Graph API. An
Instagram fake (`create_fake_graph_app(instagram=True)`, a stand-in for graph.instagram.com
or for the host of a deployment's Instagram sends) also holds text to Instagram's limit.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

import orjson
import structlog
from aiohttp import web

from lull.common.event_loop import new_event_loop
from lull.dev.fake_graph_batch import answer_batch, batch_calls
from lull.dev.fake_graph_presence import is_presence, sender_action_problem, whatsapp_read_problem
from lull.dev.fake_graph_recipient import whatsapp_contact, whatsapp_recipient_problem
from lull.dev.fake_graph_window import recipient, tag_problem, template_problem, window_error
from lull.dev.fake_media import add_cdn_routes, add_demo_media, add_media_routes
from lull.dev.fake_transcribe import add_transcribe_routes

MESSENGER_TEXT_LIMIT: Final = 2000
# Instagram Messaging, Send a Message: "Message text must be UTF-8 and be a 1000 bytes or
# less", and "Text message must be less than 1000 characters".
INSTAGRAM_TEXT_LIMIT_BYTES: Final = 1000
# The Graph API's node for whoever the request's token belongs to.
ME: Final = "me"
WHATSAPP_TEXT_LIMIT: Final = 4096
MESSAGING_TYPES: Final = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})
MESSENGER_ATTACHMENTS: Final = frozenset({"image", "audio", "video", "file", "template"})
QUICK_REPLY_TYPES: Final = frozenset({"text", "user_phone_number", "user_email"})
WHATSAPP_MEDIA: Final = frozenset({"image", "audio", "video", "document", "sticker"})
# Stopping the fake never has in-flight work worth waiting for.
SHUTDOWN_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class ScriptedError:
    """One error answer the fake gives instead of accepting a request."""

    status: int
    code: int
    message: str
    subcode: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    details: str | None = None
    """WhatsApp's explanation, sent as `error_data.details` as the Cloud API does."""


class FakeGraph:
    """The fake's state: accepted requests, pending scripted errors, simulated latency."""

    def __init__(
        self,
        tokens: Mapping[str, str] | None,
        *,
        instagram: bool = False,
        first_id: int | None = None,
    ) -> None:
        self.tokens = None if tokens is None else dict(tokens)
        self.instagram = instagram
        self.sent: list[dict[str, Any]] = []
        self.thread_control: list[dict[str, Any]] = []
        self.errors: deque[ScriptedError] = deque()
        self.latency_ms = 0
        self.log_sends = False
        self.presence: list[dict[str, Any]] = []
        """Accepted read receipts and typing calls: `{account_id, payload, at_ms}`."""
        self.presence_errors: deque[ScriptedError] = deque()
        self.presence_latency_ms = 0
        self.presence_calls = 0
        """Presence requests received, answered or not (errors and bad tokens included)."""
        self.message_calls = 0
        self.batch_requests = 0
        """Batch requests received, answered or not."""
        self.batch_errors: deque[ScriptedError] = deque()
        """Scripted refusals of whole batch requests, used before any of their calls."""
        """Message requests received, answered or not (refused ones included)."""
        self.user_last_ms: dict[str, int] = {}
        """When each user last wrote, as far as the fake was told (dev/fake_graph_window.py)."""
        self._presence_seen = asyncio.Event()
        # Ids count on from the clock (µs), not from 1: lull remembers the ids it was answered
        # (echo detection, WhatsApp statuses) across runs of the fake, as Meta's never repeat.
        self._last_id = (time.time_ns() // 1000 if first_id is None else first_id) - 1

    def sender_of(self, node: str, token: str | None) -> str | None:
        """The account a request sends as, None when its token may not. Any token passes when
        the fake was given none, else exactly the account's token; `me` is whoever the token
        belongs to, as on the Graph API."""
        if not token:
            return None
        if self.tokens is None:
            return node
        if node == ME:
            return next((account for account, known in self.tokens.items() if known == token), None)
        return node if self.tokens.get(node) == token else None

    def script(
        self,
        errors: list[ScriptedError],
        latency_ms: int,
        presence_errors: list[ScriptedError] | None = None,
        presence_latency_ms: int = 0,
        batch_errors: list[ScriptedError] | None = None,
    ) -> None:
        """Replace the pending errors and the latency (of messages, and of presence calls),
        and the refusals of batch requests."""
        self.batch_errors = deque(batch_errors or [])
        self.errors = deque(errors)
        self.latency_ms = latency_ms
        self.presence_errors = deque(presence_errors or [])
        self.presence_latency_ms = presence_latency_ms

    def saw_presence(self) -> None:
        """Count one presence request and wake whoever waits for it."""
        self.presence_calls += 1
        self._presence_seen.set()
        self._presence_seen = asyncio.Event()

    async def wait_presence(self, calls: int, timeout_s: float = 5.0) -> None:
        """In-process tests: until `calls` presence requests have arrived; TimeoutError after
        timeout_s."""
        async with asyncio.timeout(timeout_s):
            while self.presence_calls < calls:
                await self._presence_seen.wait()

    def wrote(self, user: str, at_ms: int) -> None:
        """The user last wrote at at_ms: Meta's 24-hour window counts from there."""
        self.user_last_ms[user] = at_ms

    def record(self, account_id: str, payload: dict[str, Any], prefix: str) -> str:
        """Remember an accepted request; its id grows with every request (zero-padded)."""
        self._last_id += 1
        message_id = f"{prefix}{self._last_id:010d}"
        if self.log_sends:
            structlog.get_logger("lull.fake_graph").info(
                "reply sent", account_id=account_id, message=excerpt(payload)
            )
        self.sent.append(
            {
                "account_id": account_id,
                "payload": payload,
                "message_id": message_id,
                "at_ms": int(time.time() * 1000),
            }
        )
        return message_id

    def record_thread_control(self, account_id: str, payload: dict[str, Any]) -> None:
        """Remember an accepted pass_thread_control, numbered on from the message ids."""
        self._last_id += 1
        self.thread_control.append(
            {
                "account_id": account_id,
                "payload": payload,
                "order": self._last_id,
                "at_ms": int(time.time() * 1000),
            }
        )


FAKE_GRAPH = web.AppKey("fake_graph", FakeGraph)
# Enough of a reply to recognise it in a terminal, not a screenful.
EXCERPT_CHARS = 60


def excerpt(payload: Mapping[str, Any]) -> str:
    """Who a Send API request goes to and what it says, shortened: "to 123: 'hi…'"."""
    recipient = payload.get("to") or (payload.get("recipient") or {}).get("id", "?")
    message = payload.get("message") or {}
    text = message.get("text") if isinstance(message, dict) else None
    if text is None and isinstance(payload.get("text"), dict):
        text = payload["text"].get("body")  # WhatsApp
    if not isinstance(text, str):
        kind = payload.get("sender_action") or payload.get("type") or "attachment"
        return f"to {recipient}: [{kind}]"
    short = text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
    return f"to {recipient}: {short!r}"


def create_fake_graph_app(
    tokens: Mapping[str, str] | None = None,
    *,
    instagram: bool = False,
    log_sends: bool = False,
    first_id: int | None = None,
) -> web.Application:
    """The fake's app; tokens maps account id to token, None accepts any bearer token.
    log_sends: one log line per accepted request, so `lull dev` shows the replies.
    first_id: the number in the first message id (None: the clock, so ids never repeat)."""
    app = web.Application()
    graph = FakeGraph(tokens, instagram=instagram, first_id=first_id)
    graph.log_sends = log_sends
    app[FAKE_GRAPH] = graph
    app.router.add_post("/{version:v[0-9.]+}/{account_id}/messages", send_message)
    app.router.add_post("/{version:v[0-9.]+}/{account_id}/pass_thread_control", pass_thread)
    app.router.add_get("/_sent", list_sent)
    app.router.add_get("/_thread_control", list_thread_control)
    app.router.add_delete("/_sent", clear_sent)
    app.router.add_post("/", batch_request)
    app.router.add_post("/{version:v[0-9.]+}", batch_request)
    app.router.add_post("/_script", set_script)
    app.router.add_post("/_user_wrote", user_wrote)
    app.router.add_get("/_presence", list_presence)
    app.router.add_delete("/_presence", clear_presence)
    # WhatsApp's media endpoints (GET /{media-id}, the download URL), and for `make run` a
    # CDN and a transcription endpoint, holding `lull simulate --media`'s demo media.
    add_demo_media(add_media_routes(app, tokens), add_cdn_routes(app), add_transcribe_routes(app))
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull fake-graph` options."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)


def run(args: argparse.Namespace) -> int:
    """`lull fake-graph`: serve until SIGTERM or SIGINT."""
    return run_fake_graph(args.port, args.host)


def run_fake_graph(
    port: int, host: str = "127.0.0.1", tokens: Mapping[str, str] | None = None
) -> int:
    """Serve the fake until SIGTERM or SIGINT; returns the exit code."""
    log = structlog.get_logger("lull.fake_graph")
    log.info("fake graph starting", host=host, port=port, any_token=tokens is None)
    web.run_app(
        create_fake_graph_app(tokens, log_sends=True),
        host=host,
        port=port,
        access_log=None,
        print=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        loop=new_event_loop(),
    )
    log.info("fake graph stopped")
    return 0


async def send_message(request: web.Request) -> web.Response:
    """Check token and shape like the Send API, then record and answer a message id."""
    graph = request.app[FAKE_GRAPH]
    raw = await request.read()
    try:
        parsed: object = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    return await messages_call(graph, request.match_info["account_id"], _token(request), parsed)


async def messages_call(
    graph: FakeGraph, node: str, token: str | None, parsed: object
) -> web.Response:
    """One call to `/{node}/messages` (alone, or inside a batch request) with its parsed JSON
    body (None: not JSON): a presence call or a message."""
    if isinstance(parsed, dict) and is_presence(parsed):
        return await presence_answer(graph, node, token, parsed)
    graph.message_calls += 1
    if graph.latency_ms:
        # The fake stands in for a network round trip; tests use this to hit client timeouts.
        await asyncio.sleep(graph.latency_ms / 1000)
    account_id = graph.sender_of(node, token)
    if account_id is None:
        return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    if graph.errors:
        scripted = graph.errors.popleft()
        return _error(
            scripted.status,
            scripted.code,
            scripted.message,
            scripted.subcode,
            scripted.headers,
            details=scripted.details,
        )
    if parsed is None:
        return _error(400, 100, "(#100) The request body is not valid JSON")
    if not isinstance(parsed, dict):
        return _error(400, 100, "(#100) The request body must be a JSON object")
    payload = parsed
    whatsapp = "messaging_product" in payload
    problem = (
        whatsapp_problem(payload)
        if whatsapp
        else messenger_problem(payload, instagram=graph.instagram)
    )
    if problem is None and not whatsapp:
        problem = tag_problem(payload, instagram=graph.instagram)
    if problem is not None:
        return _error(400, 100, f"(#100) {problem}")
    user = recipient(payload)
    last_ms = graph.user_last_ms.get(user) if user is not None else None
    late = window_error(payload, last_ms, int(time.time() * 1000), instagram=graph.instagram)
    if late is not None:
        return _error(400, late.code, late.message, late.subcode, details=late.details)
    if whatsapp:
        message_id = graph.record(account_id, payload, "wamid.FAKE")
        return _json(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [whatsapp_contact(payload)],
                "messages": [{"id": message_id}],
            },
        )
    message_id = graph.record(account_id, payload, "m_FAKE")
    return _json(200, {"recipient_id": payload["recipient"]["id"], "message_id": message_id})


async def pass_thread(request: web.Request) -> web.Response:
    """Handover Protocol's pass_thread_control: recipient.id and target_app_id required,
    metadata optional; answers `{"success": true}` as Meta documents."""
    graph = request.app[FAKE_GRAPH]
    account_id = graph.sender_of(request.match_info["account_id"], _token(request))
    if account_id is None:
        return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    if graph.errors:
        scripted = graph.errors.popleft()
        return _error(scripted.status, scripted.code, scripted.message, scripted.subcode)
    try:
        payload = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, 100, "(#100) The request body is not valid JSON")
    problem = thread_control_problem(payload)
    if problem is not None:
        return _error(400, 100, f"(#100) {problem}")
    graph.record_thread_control(account_id, payload)
    return _json(200, {"success": True})


def thread_control_problem(payload: object) -> str | None:
    """Why a pass_thread_control body is not in Meta's documented shape, or None."""
    if not isinstance(payload, dict):
        return "the request body must be a JSON object"
    recipient = payload.get("recipient")
    if not isinstance(recipient, dict) or not _text(recipient.get("id")):
        return "recipient.id is required"
    target = payload.get("target_app_id")
    if not (_is_int(target) or (isinstance(target, str) and target.isdigit())):
        return "target_app_id must be an app id"
    metadata = payload.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        return "metadata must be a string"
    return None


async def batch_request(request: web.Request) -> web.Response:
    """A Graph API batch request: each call answered as alone, in one array."""
    graph = request.app[FAKE_GRAPH]
    graph.batch_requests += 1
    form: dict[str, Any]
    if request.content_type == "application/json":
        try:
            parsed = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            parsed = None
        form = parsed if isinstance(parsed, dict) else {}
    else:
        form = {key: value for key, value in (await request.post()).items()}
    token = _token(request) or (str(form["access_token"]) if "access_token" in form else None)
    if graph.batch_errors:
        scripted = graph.batch_errors.popleft()
        return _error(scripted.status, scripted.code, scripted.message, scripted.subcode)
    calls = batch_calls(form)
    if isinstance(calls, str):
        return _error(400, 100, calls)

    async def one(node: str, call_token: str | None, payload: object) -> web.Response:
        return await messages_call(graph, node, call_token, payload)

    include_headers = str(form.get("include_headers", "true")).lower() != "false"
    return _json(200, await answer_batch(calls, token, include_headers, one))


async def list_thread_control(request: web.Request) -> web.Response:
    """Every accepted pass_thread_control, oldest first."""
    return _json(200, request.app[FAKE_GRAPH].thread_control)


async def presence_answer(
    graph: FakeGraph, node: str, token: str | None, payload: dict[str, Any]
) -> web.Response:
    """Check and record a presence call; answer as Meta does (`recipient_id`, `success`)."""
    graph.saw_presence()
    if graph.presence_latency_ms:
        await asyncio.sleep(graph.presence_latency_ms / 1000)
    account_id = graph.sender_of(node, token)
    if account_id is None:
        return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    if graph.presence_errors:
        scripted = graph.presence_errors.popleft()
        return _error(scripted.status, scripted.code, scripted.message, scripted.subcode)
    whatsapp = "messaging_product" in payload
    problem = whatsapp_read_problem(payload) if whatsapp else sender_action_problem(payload)
    if problem is not None:
        return _error(400, 100, f"(#100) {problem}")
    graph.presence.append(
        {"account_id": account_id, "payload": payload, "at_ms": int(time.time() * 1000)}
    )
    action = (
        ("typing" if "typing_indicator" in payload else "read")
        if whatsapp
        else payload["sender_action"]
    )
    # `make run`'s log: the user would now see their message read, or the bot typing.
    structlog.get_logger("lull.fake_graph").info(
        "typing" if "typing" in action else "read",
        account_id=account_id,
        action=action,
        **(
            {"message_id": payload["message_id"]}
            if whatsapp
            else {"user": payload["recipient"]["id"]}
        ),
    )
    if whatsapp:
        return _json(200, {"success": True})
    return _json(200, {"recipient_id": payload["recipient"]["id"]})


async def list_presence(request: web.Request) -> web.Response:
    """Every accepted read receipt and typing call, oldest first."""
    return _json(200, request.app[FAKE_GRAPH].presence)


async def clear_presence(request: web.Request) -> web.Response:
    """Forget the accepted presence calls."""
    graph = request.app[FAKE_GRAPH]
    cleared = len(graph.presence)
    graph.presence.clear()
    return _json(200, {"cleared": cleared})


async def list_sent(request: web.Request) -> web.Response:
    """Every accepted request, oldest first."""
    return _json(200, request.app[FAKE_GRAPH].sent)


async def clear_sent(request: web.Request) -> web.Response:
    """Forget the accepted requests; ids keep growing."""
    graph = request.app[FAKE_GRAPH]
    cleared = len(graph.sent)
    graph.sent.clear()
    graph.thread_control.clear()
    return _json(200, {"cleared": cleared})


async def set_script(request: web.Request) -> web.Response:
    """Replace the error script and the latency."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _control_error("the body is not valid JSON")
    try:
        errors, latency_ms = parse_script(body)
        presence_body = body if isinstance(body, dict) else {}
        presence_errors, presence_latency_ms = parse_script(
            {
                "errors": presence_body.get("presence_errors", []),
                "latency_ms": presence_body.get("presence_latency_ms", 0),
            }
        )
        batch_errors, _ = parse_script({"errors": presence_body.get("batch_errors", [])})
    except ValueError as exc:
        return _control_error(str(exc))
    request.app[FAKE_GRAPH].script(
        errors, latency_ms, presence_errors, presence_latency_ms, batch_errors
    )
    return _json(200, {"pending_errors": len(errors), "latency_ms": latency_ms})


async def user_wrote(request: web.Request) -> web.Response:
    """Tell the fake when a user last wrote (the 24-hour window counts from there)."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _control_error("the body is not valid JSON")
    user = body.get("user") if isinstance(body, dict) else None
    at_ms = body.get("at_ms") if isinstance(body, dict) else None
    if not _text(user) or not _is_int(at_ms):
        return _control_error('the body must be {"user": "<id>", "at_ms": <ms>}')
    request.app[FAKE_GRAPH].wrote(user, at_ms)
    return _json(200, {"user": user, "at_ms": at_ms})


def parse_script(body: object) -> tuple[list[ScriptedError], int]:
    """The errors (each repeated count times) and the latency of a /_script body."""
    if not isinstance(body, dict):
        raise ValueError("the script must be a JSON object")
    latency_ms = body.get("latency_ms", 0)
    if not _is_int(latency_ms) or latency_ms < 0:
        raise ValueError("latency_ms must be an integer >= 0")
    specs = body.get("errors", [])
    if not isinstance(specs, list):
        raise ValueError("errors must be a list")
    errors: list[ScriptedError] = []
    for index, spec in enumerate(specs):
        where = f"errors[{index}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be an object")
        status, code = spec.get("status"), spec.get("code")
        subcode, count = spec.get("subcode"), spec.get("count", 1)
        message, headers = spec.get("message", "scripted error"), spec.get("headers", {})
        details = spec.get("details")
        if not _is_int(status) or not 400 <= status <= 599:
            raise ValueError(f"{where}.status must be an integer from 400 to 599")
        if not _is_int(code):
            raise ValueError(f"{where}.code must be an integer")
        if subcode is not None and not _is_int(subcode):
            raise ValueError(f"{where}.subcode must be an integer")
        if not _is_int(count) or count < 1:
            raise ValueError(f"{where}.count must be an integer >= 1")
        if not isinstance(message, str):
            raise ValueError(f"{where}.message must be a string")
        if not isinstance(headers, dict) or not all(
            isinstance(value, str) for value in headers.values()
        ):
            raise ValueError(f"{where}.headers must be an object of strings")
        if details is not None and not isinstance(details, str):
            raise ValueError(f"{where}.details must be a string")
        scripted = ScriptedError(status, code, message, subcode, dict(headers), details)
        errors.extend([scripted] * count)
    return errors, latency_ms


def messenger_problem(payload: Mapping[str, Any], *, instagram: bool = False) -> str | None:
    """What is wrong with a Messenger/Instagram Send API body, None when nothing."""
    recipient = payload.get("recipient")
    if not isinstance(recipient, dict) or not _text(recipient.get("id")):
        return "param recipient[id] must be a non-empty string"
    if not _one_of(payload.get("messaging_type"), MESSAGING_TYPES):
        return f"param messaging_type must be one of {sorted(MESSAGING_TYPES)}"
    message = payload.get("message")
    if not isinstance(message, dict):
        return "param message must be an object"
    text, attachment = message.get("text"), message.get("attachment")
    if (text is None) == (attachment is None):
        return "param message must have exactly one of text or attachment"
    if text is not None:
        if not _text(text):
            return "param message[text] must be a non-empty string"
        if len(text) > MESSENGER_TEXT_LIMIT:
            return f"Length of param message[text] must be <= {MESSENGER_TEXT_LIMIT}"
        if instagram and len(text.encode("utf-8")) > INSTAGRAM_TEXT_LIMIT_BYTES:
            return f"param message[text] must be {INSTAGRAM_TEXT_LIMIT_BYTES} bytes or less"
        if instagram and len(text) >= INSTAGRAM_TEXT_LIMIT_BYTES:
            return f"param message[text] must be less than {INSTAGRAM_TEXT_LIMIT_BYTES} characters"
    else:
        problem = _messenger_attachment_problem(attachment)
        if problem is not None:
            return problem
    return _quick_replies_problem(message.get("quick_replies"))


def _messenger_attachment_problem(attachment: object) -> str | None:
    if not isinstance(attachment, dict):
        return "param message[attachment] must be an object"
    kind, payload = attachment.get("type"), attachment.get("payload")
    if not _one_of(kind, MESSENGER_ATTACHMENTS):
        return f"param message[attachment][type] must be one of {sorted(MESSENGER_ATTACHMENTS)}"
    if not isinstance(payload, dict):
        return "param message[attachment][payload] must be an object"
    if kind != "template" and not _url(payload.get("url")):
        return "param message[attachment][payload][url] must be an http(s) URL"
    return None


def _quick_replies_problem(quick_replies: object) -> str | None:
    if quick_replies is None:
        return None
    if not isinstance(quick_replies, list) or not 1 <= len(quick_replies) <= 13:
        return "param message[quick_replies] must be a list of 1 to 13 items"
    for item in quick_replies:
        if not isinstance(item, dict) or not _one_of(item.get("content_type"), QUICK_REPLY_TYPES):
            return "param message[quick_replies][content_type] is missing or unknown"
        if item["content_type"] == "text" and not (
            _text(item.get("title")) and isinstance(item.get("payload"), str | int)
        ):
            return "a text quick reply needs a title and a payload"
    return None


def whatsapp_problem(payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a WhatsApp Cloud API message body, None when nothing."""
    if payload.get("messaging_product") != "whatsapp":
        return "param messaging_product must be 'whatsapp'"
    problem = whatsapp_recipient_problem(payload.get("to"), payload.get("recipient"))
    if problem is not None:
        return problem
    if payload.get("recipient_type", "individual") != "individual":
        return "param recipient_type must be 'individual'"
    context = payload.get("context")
    if context is not None and not (isinstance(context, dict) and _text(context.get("message_id"))):
        return "param context[message_id] must be a non-empty string"
    kind = payload.get("type")
    content = payload.get(kind) if isinstance(kind, str) else None
    if not isinstance(content, dict):
        return "param type must name an object present in the request"
    if kind == "text":
        body = content.get("body")
        if not _text(body):
            return "param text[body] must be a non-empty string"
        if len(body) > WHATSAPP_TEXT_LIMIT:
            return f"param text[body] must be at most {WHATSAPP_TEXT_LIMIT} characters"
        return None
    if kind in WHATSAPP_MEDIA:
        if ("link" in content) == ("id" in content):
            return f"param {kind} needs exactly one of link or id"
        if "link" in content and not _url(content["link"]):
            return f"param {kind}[link] must be an http(s) URL"
        return None
    check = {"interactive": _interactive_problem, "template": template_problem}.get(str(kind))
    return f"the fake does not support type {kind!r}" if check is None else check(content)


def _interactive_problem(content: Mapping[str, Any]) -> str | None:
    if content.get("type") != "button":
        return "the fake supports only interactive type 'button'"
    body = content.get("body")
    if not isinstance(body, dict) or not _text(body.get("text")) or len(body["text"]) > 1024:
        return "param interactive[body][text] must be 1 to 1024 characters"
    action = content.get("action")
    buttons = action.get("buttons") if isinstance(action, dict) else None
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        return "param interactive[action][buttons] must hold 1 to 3 buttons"
    titles, ids = set(), set()
    for button in buttons:
        reply = button.get("reply") if isinstance(button, dict) else None
        reply = reply if isinstance(reply, dict) else None
        if not isinstance(button, dict) or button.get("type") != "reply" or not reply:
            return "each button must be {type: reply, reply: {id, title}}"
        title, button_id = reply.get("title"), reply.get("id")
        if not _text(title) or len(title) > 20 or not _text(button_id) or len(button_id) > 256:
            return "a button needs a title of 1 to 20 and an id of 1 to 256 characters"
        titles.add(title)
        ids.add(button_id)
    if len(titles) < len(buttons) or len(ids) < len(buttons):
        return "button titles and ids must be unique"
    return None


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # Meta also takes the token as a query parameter (the docs' curl examples do).
    return request.query.get("access_token") or None


def _error(
    status: int,
    code: int,
    message: str,
    subcode: int | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    details: str | None = None,
) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "FAKE"
    return _json(status, {"error": error}, headers)


def _control_error(message: str) -> web.Response:
    return _json(400, {"error": {"message": message}})


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def _text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://")) and len(value) > 8


def _one_of(value: object, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
