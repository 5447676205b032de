"""The handler: what turns one batch into raw reply dicts (an HTTP bot, a Python function, ...).

Outcomes are typed: a handler returns the bot's replies, raises BotRetry when a later
attempt may succeed, or BotPermanent when none will. The sender decides what that means
for the stream entry (retry with backoff, dead letter) and validates the reply dicts itself.

Decisions:
- http: 202 Accepted defers the answer (its replies come through the send API later);
  429, 408, 5xx, timeouts and connection errors are temporary; any other 3xx/4xx is
  permanent (redirects are not followed: they would re-send the signed body elsewhere).
  A 2xx whose body is not a JSON object, or whose "replies" is not a list of objects, is a
  bot bug and permanent. An empty body, 204 or a missing "replies" means "nothing to send".
  An answer with a "handoff" is handed on whole (replies and handoff), for
  common/replies.py to check.
- python: the function runs under the same timeout as an HTTP call. BotRetry and
  BotPermanent pass through; any other exception (and a timeout) is treated as temporary:
  a crash may come from a dependency the function calls, and the sender's send-attempt
  budget still dead-letters a batch that keeps failing.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import traceback
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog

from lull.common.env import ConfigError
from lull.common.signing import sign
from lull.sender.retry_after import retry_after_ms

SIGNATURE_HEADER = "X-Lull-Signature-256"
HANDLER_FORMS = "http(s)://host/path, python:package.module:function, echo or none"
"""What LULL_HANDLER accepts, for settings errors."""
HANDLER_ENV = "LULL_HANDLER"
DEFAULT_TIMEOUT_MS = 30_000
# Enough of a refused answer to tell why in a dead letter, not the whole page.
EXCERPT_CHARS = 200

ReplyJson = dict[str, Any]
"""One reply as the bot answers it, before common/replies.py checks it into a Reply."""
AnswerJson = list[ReplyJson] | dict[str, Any]
"""What a handler returns: its replies, or (when it asks for a human) the answer object
`{"replies": [...], "handoff": {...}}`; common/replies.py's parse_answer checks either."""
BotFunction = Callable[[dict[str, Any]], Awaitable[AnswerJson]]
Reached = Callable[[], None]
"""Called once the batch is on its way to the bot (an HTTP request sent, a function
called): the sender shows typing only while a bot call is in flight (sender/presence/calls.py)."""
HANDOFF = "handoff"
DEFER = "defer"
"""`{"defer": true}` (an HTTP bot's 202, or a python: handler's answer): the replies come
later, through the send API (ingest/send_api.py)."""
ANSWER_KEYS = frozenset({"replies", HANDOFF, DEFER})
"""The keys of the answer object lull reads; others are ignored, with a warning (a typo
like "replys" would otherwise send nothing without a word)."""

log = structlog.get_logger("lull.sender")


class BotRetry(Exception):
    """Temporary failure: try the batch again later (after retry_after_ms when the bot said)."""

    def __init__(self, reason: str, retry_after_ms: int | None = None) -> None:
        shown = reason if retry_after_ms is None else f"{reason} (retry after {retry_after_ms} ms)"
        super().__init__(shown)
        self.reason = reason
        self.retry_after_ms = retry_after_ms


class BotPermanent(Exception):
    """No attempt will succeed: dead-letter the batch with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Bot(Protocol):
    """Turns one batch into raw reply dicts; close() releases what it holds."""

    name: str
    forward_only: bool
    """True when the handler never replies, so the sender can skip sending altogether."""

    async def __call__(self, batch: dict[str, Any], reached: Reached | None = None) -> AnswerJson:
        """The bot's answer to batch (unvalidated); raises BotRetry/BotPermanent. Calls
        reached (when given) once the batch is on its way, never when it could not be sent."""
        ...

    async def close(self) -> None:
        """Release connections; the handler is not called afterwards."""
        ...


def handler_target(spec: str) -> str:
    """Where a LULL_HANDLER spec sends batches, fit for a log line: an http(s) URL without
    its user info, query and fragment (they may carry a secret); python:, echo, none as is."""
    if not spec.startswith(("http://", "https://")):
        return spec
    url = urlsplit(spec)
    host = url.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}{url.path}"


def parse_handler_spec(value: str) -> str:
    """Validate a LULL_HANDLER value; raises ValueError naming the accepted forms."""
    spec = value.strip()
    if spec.lower() in ("echo", "none"):
        return spec.lower()
    if spec.startswith("python:"):
        module, sep, function = spec.removeprefix("python:").partition(":")
        dotted_ok = module != "" and all(part.isidentifier() for part in module.split("."))
        if sep and dotted_ok and function.isidentifier():
            return spec
    else:
        try:
            url = urlsplit(spec)
            _ = url.port  # raises ValueError when the port is not a number in range
        except ValueError:
            url = None
        if url is not None and url.scheme in ("http", "https") and url.hostname:
            return spec
    raise ValueError(f"{value!r}: expected {HANDLER_FORMS}")


async def build_bot(
    spec: str,
    *,
    secret: str,
    timeout_ms: int,
    session: aiohttp.ClientSession | None = None,
) -> Bot:
    """The handler for a LULL_HANDLER spec; a python function is imported and checked here."""
    try:
        spec = parse_handler_spec(spec)
    except ValueError:
        raise ConfigError(HANDLER_ENV, spec, HANDLER_FORMS) from None
    if timeout_ms <= 0:
        raise ValueError(f"timeout_ms={timeout_ms}: must be > 0")
    if spec == "echo":
        return EchoBot()
    if spec == "none":
        return ForwardOnlyBot()
    if spec.startswith("python:"):
        return PythonBot(load_function(spec), timeout_ms=timeout_ms)
    return HttpBot(spec, secret=secret, timeout_ms=timeout_ms, session=session)


class EchoBot:
    """Replies with the batch's combined text (demos, tests)."""

    name = "echo"
    forward_only = False

    async def __call__(
        self, batch: dict[str, Any], reached: Reached | None = None
    ) -> list[ReplyJson]:
        """One reply carrying batch["text"], none when there is no text."""
        if reached is not None:
            reached()
        text = batch.get("text")
        # Only attachments (or blanks): there is nothing to echo, and an empty text is not sendable.
        if not isinstance(text, str) or not text.strip():
            return []
        return [{"text": text}]

    async def close(self) -> None:
        """Nothing to release."""


class ForwardOnlyBot:
    """LULL_HANDLER=none: batches are only forwarded; nothing is ever replied."""

    name = "none"
    forward_only = True

    async def __call__(
        self, batch: dict[str, Any], reached: Reached | None = None
    ) -> list[ReplyJson]:
        """No replies."""
        return []

    async def close(self) -> None:
        """Nothing to release."""


class HttpBot:
    """POSTs the batch to the bot's URL, signed, and reads {"replies": [...]} from the answer."""

    name = "http"
    forward_only = False

    def __init__(
        self, url: str, *, secret: str, timeout_ms: int, session: aiohttp.ClientSession | None
    ) -> None:
        self._url = url
        self._target = handler_target(url)
        self._secret = secret
        self._timeout_ms = timeout_ms
        self._timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        self._owns_session = session is None
        if session is None:
            session = aiohttp.ClientSession(timeout=self._timeout, trace_configs=[_sent_trace()])
        self._session = session

    async def __call__(self, batch: dict[str, Any], reached: Reached | None = None) -> AnswerJson:
        """The bot's answer; raises BotRetry or BotPermanent per the answer. reached: once the
        request's headers are sent (a given session without the trace: just before)."""
        try:
            body = orjson.dumps(batch)
        except orjson.JSONEncodeError as exc:
            raise BotPermanent(f"batch is not JSON-serialisable: {exc}") from None
        headers = {"Content-Type": "application/json", "User-Agent": "lull"}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        trace = None
        if reached is not None:
            if self._owns_session:
                trace = SimpleNamespace(reached=reached)
            else:
                reached()
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout,
                allow_redirects=False, trace_request_ctx=trace,
            ) as response:  # fmt: skip
                status = response.status
                retry_after = response.headers.get("Retry-After")
                answer = await response.read()
        except TimeoutError:
            raise BotRetry(f"bot did not answer within {self._timeout_ms} ms") from None
        except (aiohttp.ClientConnectorError, OSError) as exc:
            # No connection (refused, no such host, TLS refused). A warning, not the retry's
            # info line: it is usually a wrong LULL_HANDLER (a port, a host), and the
            # operator needs to see where lull looked.
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("bot unreachable", url=self._target, setting=HANDLER_ENV, error=reason)
            raise BotRetry(f"bot unreachable at {self._target}: {reason}") from None
        except aiohttp.ClientError as exc:
            raise BotRetry(f"bot call failed: {type(exc).__name__}: {exc}") from None
        return _read_answer(status, answer, retry_after)

    async def close(self) -> None:
        """Close the session if this handler created it."""
        if self._owns_session and not self._session.closed:
            await self._session.close()


class PythonBot:
    """Calls an async function of the bot's own code, in this process."""

    name = "python"
    forward_only = False

    def __init__(self, function: BotFunction, *, timeout_ms: int) -> None:
        self._function = function
        self._timeout_ms = timeout_ms

    async def __call__(self, batch: dict[str, Any], reached: Reached | None = None) -> AnswerJson:
        """The function's answer; its unexpected exceptions become BotRetry."""
        if reached is not None:
            reached()
        try:
            async with asyncio.timeout(self._timeout_ms / 1000):
                replies: object = await self._function(batch)
        except (BotRetry, BotPermanent):
            raise
        except TimeoutError:
            raise BotRetry(f"function did not return within {self._timeout_ms} ms") from None
        except Exception as exc:
            # Temporary on purpose (see the module docstring); the cause stays chained for logs.
            raise BotRetry(f"function raised {type(exc).__name__}: {exc}") from exc
        if isinstance(replies, dict) and replies.get(DEFER) is True:
            return {DEFER: True}
        if isinstance(replies, dict) and HANDOFF in replies:
            return _with_handoff(replies, "function result")
        return _checked_replies(replies, "function result")

    async def close(self) -> None:
        """Nothing to release."""


def _sent_trace() -> aiohttp.TraceConfig:
    """Calls a request's `reached` once its headers are sent: the bot was reached (a refused
    or unresolvable host never gets that far)."""

    async def headers_sent(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestHeadersSentParams,
    ) -> None:
        reached = getattr(context.trace_request_ctx, "reached", None)
        if reached is not None:
            reached()

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(headers_sent)
    return trace


def load_function(spec: str) -> BotFunction:
    """Import python:module:function once, at start; ConfigError when it is not usable.

    Every failure is one line (the sender prints it and exits 2): a module not found names
    PYTHONPATH, where Python looked besides lull's own environment; an error raised while importing
    the bot's own module names the exception and the file and line it came from.
    """
    module_name, _, function_name = spec.removeprefix("python:").partition(":")
    problem: str | None = None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ConfigError(HANDLER_ENV, spec, _not_found(missing)) from None
        problem = _import_problem(module_name, exc)
    except Exception as exc:  # the bot's own code: whatever it raises, the handler is unusable
        problem = _import_problem(module_name, exc)
    if problem is not None:
        raise ConfigError(HANDLER_ENV, spec, problem)
    function = getattr(module, function_name, None)
    if function is None:
        raise ConfigError(HANDLER_ENV, spec, f"module {module_name!r} has no {function_name!r}")
    if not inspect.iscoroutinefunction(function):
        raise ConfigError(HANDLER_ENV, spec, f"{function_name!r} must be an async function")
    checked: BotFunction = function
    return checked


def _not_found(missing: str) -> str:
    """One short line for a bot module Python cannot find: which, where it looked, the fix.
    Only PYTHONPATH is named: the rest of sys.path is lull's own environment (and, in an
    editable install, import hooks no reader needs to see)."""
    package, _, leaf = missing.rpartition(".")
    if package:
        return f"no module named {missing!r}: package {package!r} has no module {leaf!r}"
    entries = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    if entries:
        where = "PYTHONPATH=" + os.pathsep.join(entries)
        if not all(os.path.isabs(entry) for entry in entries):
            where += f" (relative to {os.getcwd()})"
        looked = f"not in {where}, nor installed beside lull"
    else:
        looked = "PYTHONPATH is unset, and it is not installed beside lull"
    return (
        f"no module named {missing!r} ({looked}): set PYTHONPATH to the folder that holds "
        f"{missing}.py or {missing}/"
    )


def _import_problem(module_name: str, exc: Exception) -> str:
    """One line for an exception raised while importing the bot's module: what and where."""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        # The innermost frame outside importlib's machinery: the line of the bot's code.
        own = [f for f in frames if "importlib" not in f.filename]
        where = f"{own[-1].filename}:{own[-1].lineno}" if own else "?"
    return f"importing {module_name!r} raised {type(exc).__name__}: {exc} (at {where})"


def _read_answer(status: int, body: bytes, retry_after: str | None) -> AnswerJson:
    if status in (408, 429) or status >= 500:
        raise BotRetry(f"bot answered {status}", retry_after_ms(retry_after))
    if not 200 <= status < 300:
        raise BotPermanent(f"bot answered {status}: {_excerpt(body)}")
    if status == 202:
        # Accepted, not answered: the bot sends its replies later through the send API.
        return {DEFER: True}
    if status == 204 or not body.strip():
        return []
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BotPermanent(f"bot answered {status} with non-JSON: {_excerpt(body)}") from None
    if not isinstance(answer, dict):
        raise BotPermanent(f"bot answered {status} with JSON that is not an object")
    unknown = sorted(str(key)[:40] for key in answer if key not in ANSWER_KEYS)
    if unknown:
        # Ignored, not refused: the contract only grows by optional fields, so an answer
        # written for a later lull must still be sent by this one.
        log.warning("bot answer has keys lull does not read; ignored", keys=unknown[:10])
    if HANDOFF in answer:
        return _with_handoff(answer, '"replies"')
    if "replies" not in answer:
        return []
    return _checked_replies(answer["replies"], '"replies"')


def is_deferred(answer: object) -> bool:
    """Whether a handler's answer defers the replies (DEFER)."""
    return isinstance(answer, dict) and answer.get(DEFER) is True


def _checked_replies(replies: object, source: str) -> list[ReplyJson]:
    if not isinstance(replies, list):
        raise BotPermanent(f"{source} is {type(replies).__name__}, expected a list")
    for index, reply in enumerate(replies):
        if not isinstance(reply, dict):
            raise BotPermanent(f"{source}[{index}] is {type(reply).__name__}, expected an object")
    return replies


def _with_handoff(answer: dict[str, Any], source: str) -> dict[str, Any]:
    """The answer object with its replies checked like any; the handoff is replies.py's."""
    replies = answer.get("replies")
    checked = [] if replies is None else _checked_replies(replies, source)
    return {"replies": checked, HANDOFF: answer[HANDOFF]}


def _excerpt(body: bytes) -> str:
    text = body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace").strip()
    return repr(text[:EXCERPT_CHARS]) if text else "(empty body)"
