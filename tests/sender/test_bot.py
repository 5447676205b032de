"""The handlers against a real fake bot on loopback and a real test module; no patching."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from lull.common.batch import Batch, Message
from lull.common.env import ConfigError
from lull.common.signing import sign
from lull.dev.embedded_redis import free_port
from lull.sender.bot import (
    Bot,
    BotPermanent,
    BotRetry,
    build_bot,
    handler_target,
    parse_handler_spec,
)
from tests.sender.fake_bot import FakeBot

SECRET = "test-handler-secret"
BOT_MODULE = "python:tests.sender.bot_module"

MakeHandler = Callable[..., Awaitable[Bot]]


def make_batch(text: str = "hi there") -> dict[str, Any]:
    """A batch as the sender hands it to the handler (the fake bot checks it is one)."""
    message = Message(
        mid="m-1", event_time=5, received_at=6, kind="text", text=text, attachments=[], raw={}
    )
    batch = Batch(
        batch_id="messenger:page-1:user-1:1", seq=1, platform="messenger", account_id="page-1",
        user_id="user-1", conversation="messenger:page-1:user-1", messages=[message], text=text,
        first_event_time=5, last_event_time=5, opened_at=6, closed_at=9, close_reason="gap",
    )  # fmt: skip
    return {**batch.to_dict(), "history": []}


@pytest.fixture
async def bot() -> AsyncIterator[FakeBot]:
    async with FakeBot(SECRET) as fake:
        yield fake


@pytest.fixture
async def make_handler() -> AsyncIterator[MakeHandler]:
    """build_bot with test defaults; every handler is closed afterwards."""
    handlers: list[Bot] = []

    async def make(spec: str, *, secret: str = SECRET, timeout_ms: int = 2000) -> Bot:
        handler = await build_bot(spec, secret=secret, timeout_ms=timeout_ms)
        handlers.append(handler)
        return handler

    yield make
    for handler in handlers:
        await handler.close()


# --- http ---------------------------------------------------------------------------------


async def test_http_posts_signed_batch_and_returns_replies(
    bot: FakeBot, make_handler: MakeHandler
) -> None:
    handler = await make_handler(bot.url)
    batch = make_batch("hello")

    assert await handler(batch) == [{"text": "echo: hello"}]
    assert bot.received == [batch]
    assert bot.state.signatures == [sign(SECRET, orjson.dumps(batch))]
    assert (handler.name, handler.forward_only) == ("http", False)


async def test_http_wrong_secret_is_refused_for_good(
    bot: FakeBot, make_handler: MakeHandler
) -> None:
    handler = await make_handler(bot.url, secret="not-the-bots-secret")

    with pytest.raises(BotPermanent, match="401"):
        await handler(make_batch())
    assert bot.state.rejected == 1
    assert bot.received == []


async def test_http_without_secret_sends_no_signature(make_handler: MakeHandler) -> None:
    async with FakeBot("") as unsigned_bot:
        handler = await make_handler(unsigned_bot.url, secret="")
        assert await handler(make_batch("x")) == [{"text": "echo: x"}]
        assert unsigned_bot.state.signatures == [None]


@pytest.mark.parametrize(
    ("status", "body"),
    [(204, None), (200, b""), (200, b"  \n"), (200, b"{}"), (201, b'{"replies": []}')],
)
async def test_http_no_replies(
    bot: FakeBot, make_handler: MakeHandler, status: int, body: bytes | None
) -> None:
    bot.script(statuses=(status,), body=body)
    handler = await make_handler(bot.url)

    assert await handler(make_batch()) == []


@pytest.mark.parametrize("body", [None, b'{"replies": [{"text": "ignored"}]}'])
async def test_http_202_defers_the_answer(
    bot: FakeBot, make_handler: MakeHandler, body: bytes | None
) -> None:
    # Accepted, not answered: the replies come through the send API
    # (sender/presence/deferred_typing.py).
    bot.script(statuses=(202,), body=body)
    handler = await make_handler(bot.url)

    assert await handler(make_batch()) == {"defer": True}


async def test_http_answer_keys_lull_does_not_read_are_ignored_with_a_warning(
    bot: FakeBot, make_handler: MakeHandler
) -> None:
    # A typo like "replys" sends nothing: the log says why instead of staying silent.
    bot.script(statuses=(200,), body=b'{"replys": [{"text": "hi"}], "mood": "happy"}')
    handler = await make_handler(bot.url)
    with capture_logs() as logs:
        assert await handler(make_batch()) == []
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["keys"] for entry in warnings] == [["mood", "replys"]]


@pytest.mark.parametrize(
    ("status", "retry_after", "retry_after_ms"),
    [(500, None, None), (503, "7", 7000), (429, "2", 2000), (429, "0.25", 250), (408, "x", None)],
)
async def test_http_temporary_statuses_retry(
    bot: FakeBot,
    make_handler: MakeHandler,
    status: int,
    retry_after: str | None,
    retry_after_ms: int | None,
) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    bot.script(statuses=(status,), headers=headers)
    handler = await make_handler(bot.url)

    with pytest.raises(BotRetry, match=str(status)) as caught:
        await handler(make_batch())
    assert caught.value.retry_after_ms == retry_after_ms


async def test_http_retry_after_as_http_date(bot: FakeBot, make_handler: MakeHandler) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    bot.script(statuses=(503,), headers={"Retry-After": format_datetime(when, usegmt=True)})
    handler = await make_handler(bot.url)

    with pytest.raises(BotRetry) as caught:
        await handler(make_batch())
    assert caught.value.retry_after_ms is not None
    assert 25_000 <= caught.value.retry_after_ms <= 31_000


async def test_http_retry_then_success(bot: FakeBot, make_handler: MakeHandler) -> None:
    bot.script(statuses=(502,))
    handler = await make_handler(bot.url)
    batch = make_batch("again")

    with pytest.raises(BotRetry):
        await handler(batch)
    assert await handler(batch) == [{"text": "echo: again"}]
    assert bot.received == [batch, batch]


@pytest.mark.parametrize("status", [400, 404, 410, 302])
async def test_http_other_statuses_are_permanent(
    bot: FakeBot, make_handler: MakeHandler, status: int
) -> None:
    bot.script(statuses=(status,), body=b"no such bot", headers={"Location": "/elsewhere"})
    handler = await make_handler(bot.url)

    with pytest.raises(BotPermanent, match=f"{status}.*no such bot"):
        await handler(make_batch())
    assert len(bot.received) == 1  # the redirect was not followed


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>oops</html>", "non-JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"replies": "hello"}', "is str, expected a list"),
        (b'{"replies": null}', "is NoneType, expected a list"),
        (b'{"replies": [{"text": "a"}, "b"]}', r"\[1\] is str, expected an object"),
    ],
)
async def test_http_malformed_2xx_is_permanent(
    bot: FakeBot, make_handler: MakeHandler, body: bytes, reason: str
) -> None:
    bot.script(body=body)
    handler = await make_handler(bot.url)

    with pytest.raises(BotPermanent, match=reason):
        await handler(make_batch())


async def test_http_replies_are_returned_raw(bot: FakeBot, make_handler: MakeHandler) -> None:
    replies = [{"text": "a"}, {"attachment": {"type": "image"}, "extra": 1}]
    bot.script(body=orjson.dumps({"replies": replies, "other": True}))
    handler = await make_handler(bot.url)

    assert await handler(make_batch()) == replies


async def test_http_answer_with_a_handoff_is_returned_whole(
    bot: FakeBot, make_handler: MakeHandler
) -> None:
    handler = await make_handler(bot.url)
    bot.script(body=orjson.dumps({"replies": [{"text": "bye"}], "handoff": {"reason": "r"}}))
    assert await handler(make_batch()) == {"replies": [{"text": "bye"}], "handoff": {"reason": "r"}}
    bot.script(body=orjson.dumps({"handoff": {"reason": "r"}}))
    assert await handler(make_batch()) == {"replies": [], "handoff": {"reason": "r"}}
    bot.script(body=orjson.dumps({"replies": "no", "handoff": {"reason": "r"}}))
    with pytest.raises(BotPermanent, match="is str, expected a list"):
        await handler(make_batch())


async def test_python_function_may_answer_with_a_handoff(make_handler: MakeHandler) -> None:
    handler = await make_handler(f"{BOT_MODULE}:hand_off_silently")
    assert await handler(make_batch()) == {"replies": [], "handoff": {"reason": "angry customer"}}


async def test_http_timeout_retries(bot: FakeBot, make_handler: MakeHandler) -> None:
    bot.script(latency_ms=5000)
    handler = await make_handler(bot.url, timeout_ms=100)

    with pytest.raises(BotRetry, match="within 100 ms") as caught:
        await handler(make_batch())
    assert caught.value.retry_after_ms is None


async def test_http_connection_refused_retries(make_handler: MakeHandler) -> None:
    async with FakeBot(SECRET) as gone:
        url = gone.url
    handler = await make_handler(url)

    with pytest.raises(BotRetry, match="unreachable"):
        await handler(make_batch())


async def test_an_unreachable_bot_is_a_warning_naming_its_url_without_secrets(
    make_handler: MakeHandler,
) -> None:
    port = free_port()  # nothing listens there
    handler = await make_handler(f"http://botuser:hunter2@127.0.0.1:{port}/lull?token=sesame#x")
    with capture_logs() as logs, pytest.raises(BotRetry) as caught:
        await handler(make_batch())
    [warning] = [entry for entry in logs if entry["event"] == "bot unreachable"]
    assert warning["log_level"] == "warning"
    assert warning["url"] == f"http://127.0.0.1:{port}/lull"
    assert warning["setting"] == "LULL_HANDLER"
    # The dead letter's reason, after the last attempt, names it too.
    assert f"unreachable at http://127.0.0.1:{port}/lull" in caught.value.reason
    shown = repr(logs) + str(caught.value)
    for secret in ("hunter2", "sesame", "botuser"):
        assert secret not in shown


@pytest.mark.parametrize(
    "spec,target",
    [
        ("https://user:pw@bot.example:8443/lull?key=k", "https://bot.example:8443/lull"),
        ("http://[::1]:8000/lull", "http://[::1]:8000/lull"),
        ("http://bot.example", "http://bot.example"),
        ("python:mybot.handler:reply", "python:mybot.handler:reply"),
        ("echo", "echo"),
    ],
)
def test_the_handler_target_is_shown_without_secrets(spec: str, target: str) -> None:
    assert handler_target(spec) == target


async def test_http_given_session_is_left_open(bot: FakeBot) -> None:
    async with aiohttp.ClientSession() as session:
        handler = await build_bot(bot.url, secret=SECRET, timeout_ms=2000, session=session)
        assert await handler(make_batch("a")) == [{"text": "echo: a"}]
        await handler.close()
        assert not session.closed


# --- python -------------------------------------------------------------------------------


async def test_python_function_replies(make_handler: MakeHandler) -> None:
    handler = await make_handler(f"{BOT_MODULE}:reply")

    assert await handler(make_batch("hey")) == [{"text": "py: hey"}]
    assert (handler.name, handler.forward_only) == ("python", False)


async def test_python_retry_and_permanent_pass_through(make_handler: MakeHandler) -> None:
    busy = await make_handler(f"{BOT_MODULE}:busy")
    refuse = await make_handler(f"{BOT_MODULE}:refuse")

    with pytest.raises(BotRetry, match="busy") as caught:
        await busy(make_batch())
    assert caught.value.retry_after_ms == 1500
    with pytest.raises(BotPermanent, match="unsupported batch"):
        await refuse(make_batch())


async def test_python_unexpected_exception_is_temporary(make_handler: MakeHandler) -> None:
    handler = await make_handler(f"{BOT_MODULE}:crash")

    with pytest.raises(BotRetry, match="RuntimeError: boom") as caught:
        await handler(make_batch())
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert caught.value.retry_after_ms is None


async def test_python_timeout_is_temporary(make_handler: MakeHandler) -> None:
    handler = await make_handler(f"{BOT_MODULE}:slow", timeout_ms=50)

    with pytest.raises(BotRetry, match="within 50 ms"):
        await handler(make_batch())


async def test_python_result_not_a_list_is_permanent(make_handler: MakeHandler) -> None:
    handler = await make_handler(f"{BOT_MODULE}:not_a_list")

    with pytest.raises(BotPermanent, match="is dict, expected a list"):
        await handler(make_batch())


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("python:tests.sender.no_such_bot:reply", "no module named 'tests.sender.no_such_bot'"),
        ("python:no_such_package.bot:reply", "no module named 'no_such_package'"),
        (f"{BOT_MODULE}:missing", "has no 'missing'"),
        (f"{BOT_MODULE}:not_async", "'not_async' must be an async function"),
        (f"{BOT_MODULE}:NOT_A_FUNCTION", "'NOT_A_FUNCTION' must be an async function"),
    ],
)
async def test_python_bad_function_fails_at_start(spec: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"LULL_HANDLER=.*{reason}"):
        await build_bot(spec, secret="", timeout_ms=1000)


# --- echo, none, specs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "replies"),
    [
        (make_batch("one\ntwo"), [{"text": "one\ntwo"}]),
        (make_batch(""), []),
        (make_batch(" \n "), []),
        ({"batch_id": "b-2", "messages": []}, []),
    ],
)
async def test_echo(
    make_handler: MakeHandler, batch: dict[str, Any], replies: list[dict[str, Any]]
) -> None:
    handler = await make_handler("echo")

    assert await handler(batch) == replies
    assert (handler.name, handler.forward_only) == ("echo", False)


async def test_none_forwards_only(make_handler: MakeHandler) -> None:
    handler = await make_handler("none")

    assert await handler(make_batch()) == []
    assert (handler.name, handler.forward_only) == ("none", True)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("echo", "echo"),
        (" None ", "none"),
        ("http://bot:8080/lull", "http://bot:8080/lull"),
        ("https://bot.example.com/hook?x=1", "https://bot.example.com/hook?x=1"),
        ("python:bot:handle", "python:bot:handle"),
        ("python:my_pkg.bots.main:on_batch", "python:my_pkg.bots.main:on_batch"),
    ],
)
def test_parse_handler_spec_valid(value: str, parsed: str) -> None:
    assert parse_handler_spec(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "",
        "reply",
        "ftp://bot/x",
        "http://",
        "http:///path",
        "http://bot:99999/x",
        "bot.example.com/hook",
        "python:",
        "python:bot",
        "python:bot:",
        "python::handle",
        "python:my-pkg.bot:handle",
        "python:bot..x:handle",
        "python:bot:handle:extra",
    ],
)
def test_parse_handler_spec_invalid(value: str) -> None:
    with pytest.raises(ValueError, match=r"expected http\(s\)://.*python:.*echo or none"):
        parse_handler_spec(value)


async def test_build_handler_rejects_bad_spec() -> None:
    with pytest.raises(ConfigError, match="LULL_HANDLER='reply'"):
        await build_bot("reply", secret="", timeout_ms=1000)
