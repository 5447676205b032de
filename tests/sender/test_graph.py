"""The Graph client: request shapes, error sorting, and real calls to the fake Graph API."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from email.utils import formatdate
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lull.common.batch import Batch
from lull.common.replies import Reply, parse_replies
from lull.dev.fake_graph import create_fake_graph_app
from lull.sender.graph.client import (
    GraphClient,
    GraphError,
    GraphRequest,
    GraphRoutes,
    MissingToken,
    build_requests,
    classify,
)
from lull.sender.graph.routes import InstagramLogin

VERSION = "v21.0"
TOKEN = "EAAtest-token-page-1"
WA_PHONE, BSUID = "16505551234", "US.13491208655302741918"
WORDS_4500 = " ".join(["word"] * 900) + "s"  # 4500 characters


def make_batch(
    platform: str = "messenger", mids: tuple[str, ...] = ("m-1", "m-2"), user: str | None = None
) -> Batch:
    """A closed batch as the processor emits it."""
    user_id = user or (WA_PHONE if platform == "whatsapp" else "user-1")
    conversation = f"{platform}:acct-1:{user_id}"
    return Batch.from_dict(
        {
            "batch_id": f"{conversation}:1",
            "seq": 1,
            "platform": platform,
            "account_id": "acct-1",
            "user_id": user_id,
            "conversation": conversation,
            "messages": [
                {"mid": mid, "event_time": 1, "received_at": 1, "kind": "text", "text": "hi",
                 "attachments": [], "raw": {}}
                for mid in mids
            ],
        }
    )  # fmt: skip


def one(item: dict[str, Any]) -> Reply:
    return parse_replies([item])[0]


def at(base_url: str) -> GraphRoutes:
    """Every platform's sends to base_url."""
    return GraphRoutes({}, base_url)


# --- request shapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "login", "path"),
    [
        ("messenger", "facebook", "/v21.0/acct-1/messages"),
        ("messenger", "instagram", "/v21.0/acct-1/messages"),
        # Facebook Login: the Page token of the Page linked to the Instagram account sends.
        ("instagram", "facebook", "/v21.0/me/messages"),
        # Instagram Login: graph.instagram.com/{ig-id}/messages.
        ("instagram", "instagram", "/v21.0/acct-1/messages"),
    ],
)
def test_messenger_text(platform: str, login: InstagramLogin, path: str) -> None:
    routes = GraphRoutes({}, instagram_login=login)
    [request] = build_requests(make_batch(platform), one({"text": "hello"}), VERSION, routes)
    assert request == GraphRequest(
        account_id="acct-1",
        path=path,
        payload={
            "recipient": {"id": "user-1"},
            "messaging_type": "RESPONSE",
            "message": {"text": "hello"},
        },
        platform=platform,
    )


def test_long_text_is_three_messenger_requests_and_two_whatsapp_requests() -> None:
    assert len(WORDS_4500) == 4500
    reply = one({"text": WORDS_4500})
    messenger = build_requests(make_batch("messenger"), reply, VERSION)
    whatsapp = build_requests(make_batch("whatsapp"), reply, VERSION)
    texts = [r.payload["message"]["text"] for r in messenger]
    assert len(texts) == 3
    assert all(len(text) <= 2000 for text in texts)
    assert " ".join(texts) == WORDS_4500
    bodies = [r.payload["text"]["body"] for r in whatsapp]
    assert len(bodies) == 2
    assert " ".join(bodies) == WORDS_4500


def test_messenger_quick_replies_ride_on_the_last_chunk() -> None:
    reply = one({"text": WORDS_4500, "quick_replies": [{"title": "Yes", "payload": "Y"}]})
    requests = build_requests(make_batch(), reply, VERSION)
    assert [("quick_replies" in r.payload["message"]) for r in requests] == [False, False, True]
    assert requests[-1].payload["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Yes", "payload": "Y"}
    ]


@pytest.mark.parametrize(("given", "sent"), [("image", "image"), ("document", "file")])
def test_messenger_attachment(given: str, sent: str) -> None:
    reply = one(
        {
            "attachment": {"type": given, "url": "https://cdn.example/a.pdf"},
            "quick_replies": [{"title": "More", "payload": "MORE"}],
        }
    )
    [request] = build_requests(make_batch("instagram"), reply, VERSION)
    assert request.payload["message"] == {
        "attachment": {
            "type": sent,
            "payload": {"url": "https://cdn.example/a.pdf", "is_reusable": True},
        },
        "quick_replies": [{"content_type": "text", "title": "More", "payload": "MORE"}],
    }


def test_whatsapp_text_quotes_the_last_user_message_on_the_first_request_only() -> None:
    requests = build_requests(make_batch("whatsapp"), one({"text": WORDS_4500}), VERSION)
    first, second = (r.payload for r in requests)
    assert first["context"] == {"message_id": "m-2"}
    assert "context" not in second
    assert {k: v for k, v in first.items() if k not in ("context", "text")} == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_PHONE,
        "type": "text",
    }
    assert first["text"]["preview_url"] is False
    assert requests[0].path == "/v21.0/acct-1/messages"


def test_whatsapp_user_known_by_bsuid_only_is_addressed_with_recipient() -> None:
    # Meta's BSUID page: `to` takes the phone number, `recipient` the business-scoped user id.
    reply = one({"text": WORDS_4500, "quick_replies": [{"title": "Yes", "payload": "Y"}]})
    requests = build_requests(make_batch("whatsapp", user=BSUID), reply, VERSION)
    assert len(requests) == 2
    for request in requests:
        assert request.payload["recipient"] == BSUID
        assert "to" not in request.payload
    parent_bsuid = "US.ENT.11815799212886844830"
    [parent] = build_requests(make_batch("whatsapp", user=parent_bsuid), one({"text": "x"}), "v1")
    assert parent.payload["recipient"] == parent_bsuid
    [phone] = build_requests(make_batch("whatsapp"), one({"text": "hi"}), VERSION)
    assert phone.payload["to"] == WA_PHONE and "recipient" not in phone.payload


def test_whatsapp_without_messages_has_no_context() -> None:
    [request] = build_requests(make_batch("whatsapp", mids=()), one({"text": "hi"}), VERSION)
    assert "context" not in request.payload


@pytest.mark.parametrize(
    ("given", "sent", "media"),
    [
        ("image", "image", {"link": "https://cdn.example/p.png"}),
        ("audio", "audio", {"link": "https://cdn.example/p.png"}),
        ("video", "video", {"link": "https://cdn.example/p.png"}),
        ("file", "document", {"link": "https://cdn.example/p.png", "filename": "p.png"}),
        ("document", "document", {"link": "https://cdn.example/p.png", "filename": "p.png"}),
    ],
)
def test_whatsapp_attachment(given: str, sent: str, media: dict[str, str]) -> None:
    reply = one({"attachment": {"type": given, "url": "https://cdn.example/p.png"}})
    [request] = build_requests(make_batch("whatsapp"), reply, VERSION)
    assert request.payload["type"] == sent
    assert request.payload[sent] == media
    assert request.payload["context"] == {"message_id": "m-2"}


def test_whatsapp_up_to_three_quick_replies_become_reply_buttons() -> None:
    options = [{"title": "Red", "payload": "RED"}, {"title": "Green", "payload": "GREEN"}]
    [request] = build_requests(
        make_batch("whatsapp"), one({"text": "Pick", "quick_replies": options}), VERSION
    )
    assert request.payload["type"] == "interactive"
    assert request.payload["interactive"] == {
        "type": "button",
        "body": {"text": "Pick"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "RED", "title": "Red"}},
                {"type": "reply", "reply": {"id": "GREEN", "title": "Green"}},
            ]
        },
    }
    assert request.payload["context"] == {"message_id": "m-2"}


def test_whatsapp_buttons_body_fits_1024_characters() -> None:
    text = " ".join(["word"] * 400)  # 1999 characters: one text chunk, too long for a body
    reply = one({"text": text, "quick_replies": [{"title": "OK", "payload": "OK"}]})
    requests = build_requests(make_batch("whatsapp"), reply, VERSION)
    assert [r.payload["type"] for r in requests] == ["text", "interactive"]
    body = requests[1].payload["interactive"]["body"]["text"]
    assert len(body) <= 1024
    assert f"{requests[0].payload['text']['body']} {body}" == text


@pytest.mark.parametrize(
    "options",
    [
        [{"title": f"Option {i}", "payload": f"P{i}"} for i in range(4)],
        [{"title": "A title longer than twenty", "payload": "P"}],
        [{"title": "Same", "payload": "A"}, {"title": "Same", "payload": "B"}],
    ],
)
def test_whatsapp_quick_replies_that_cannot_be_buttons_become_a_text_list(
    options: list[dict[str, str]],
) -> None:
    reply = one({"text": "Pick one:", "quick_replies": options})
    [request] = build_requests(make_batch("whatsapp"), reply, VERSION)
    expected = "Pick one:\n\n" + "\n".join(f"• {o['title']}" for o in options)
    assert request.payload["type"] == "text"
    assert request.payload["text"]["body"] == expected


def test_whatsapp_attachment_with_quick_replies_is_followed_by_the_list() -> None:
    reply = one(
        {
            "attachment": {"type": "image", "url": "https://cdn.example/p.png"},
            "quick_replies": [{"title": "Like", "payload": "LIKE"}],
        }
    )
    media, options = build_requests(make_batch("whatsapp"), reply, VERSION)
    assert media.payload["type"] == "image"
    assert media.payload["context"] == {"message_id": "m-2"}
    assert options.payload["text"]["body"] == "• Like"
    assert "context" not in options.payload


@pytest.mark.parametrize(
    ("batch", "reason"),
    [
        (replace(make_batch(), platform="telegram"), "platform must be one of"),
        (replace(make_batch(), user_id=""), "user_id must be a non-empty string"),
        (replace(make_batch(), account_id=""), "account_id must be a non-empty string"),
    ],
)
def test_bad_batches_are_refused(batch: Batch, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        build_requests(batch, one({"text": "x"}), VERSION)


def test_an_empty_reply_is_refused() -> None:
    with pytest.raises(ValueError, match="neither text nor an attachment"):
        build_requests(make_batch(), Reply(text=" ", attachment=None, quick_replies=None), VERSION)


# --- classify ------------------------------------------------------------------------------


def meta_error(code: int, subcode: int | None = None, message: str = "boom") -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        *[
            (code, "throttle")
            for code in (4, 17, 32, 613, 80001, 80002, 80006, 80007, 130429, 131048, 131056)
        ],
        *[(code, "temporary") for code in (1, 2, 1200, 131000, 131016, 131057, 133004)],
        *[
            (code, "permanent")
            for code in (0, 3, 10, 100, 190, 200, 230, 299, 368, 551, 131026, 131049)
        ],
        (131051, "permanent"),
        (131047, "window"),
    ],
)
def test_codes_decide_the_kind_whatever_the_status(code: int, kind: str) -> None:
    for status in (400, 429, 500):
        error = classify(status, meta_error(code, subcode=33), {})
        assert (error.kind, error.code, error.subcode, error.status) == (kind, code, 33, status)
        assert error.message == "boom"


def test_code_10_is_the_window_only_with_its_subcode() -> None:
    # Messenger/Instagram: "This message is sent outside of allowed window" is code 10 with
    # subcode 2018278; code 10 alone is any permission error.
    late = classify(400, meta_error(10, subcode=2018278), {"Retry-After": "5"})
    assert (late.kind, late.retry_after_ms) == ("window", None)
    assert classify(400, meta_error(10, subcode=2018065), {}).kind == "permanent"
    assert classify(400, meta_error(10), {}).kind == "permanent"
    assert classify(400, meta_error(100, subcode=2018278), {}).kind == "permanent"


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (None, None, "temporary"),
        (500, None, "temporary"),
        (503, b"<html>", "temporary"),
        (502, meta_error(99999), "temporary"),
        (429, None, "throttle"),
        (400, None, "permanent"),
        (404, meta_error(99999), "permanent"),
        (403, {"error": "not an object"}, "permanent"),
        (302, None, "temporary"),
    ],
)
def test_unknown_codes_fall_back_to_the_status(status: int | None, body: object, kind: str) -> None:
    error = classify(status, body, {})
    assert error.kind == kind
    assert error.retry_after_ms is None


def test_message_and_whatsapp_details() -> None:
    body = meta_error(131047, message="Re-engagement message")
    body["error"]["error_data"] = {"messaging_product": "whatsapp", "details": "24 hours passed"}
    error = classify(400, body, {})
    assert error.message == "Re-engagement message: 24 hours passed"
    assert str(error) == (
        "window: Re-engagement message: 24 hours passed (status 400, code 131047)"
    )
    assert classify(None, None, {}).message == "HTTP None"
    assert str(classify(None, None, {})) == "temporary: HTTP None (no response)"


@pytest.mark.parametrize(
    ("headers", "retry_after_ms"),
    [
        ({"Retry-After": "3"}, 3000),
        ({"retry-after": "0.25"}, 250),
        ({"Retry-After": "0"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        (
            {
                "X-Business-Use-Case-Usage": orjson.dumps(
                    {
                        "123": [
                            {
                                "type": "messenger",
                                "call_count": 100,
                                "estimated_time_to_regain_access": 2,
                            },
                            {
                                "type": "pages",
                                "call_count": 5,
                                "estimated_time_to_regain_access": 0,
                            },
                        ]
                    }
                ).decode()
            },
            120_000,
        ),
        ({"X-App-Usage": '{"call_count": 100, "estimated_time_to_regain_access": 1}'}, 60_000),
        ({"X-App-Usage": '{"call_count": 100, "total_time": 20}'}, None),
        ({"X-App-Usage": "{not json"}, None),
        (
            {
                "Retry-After": "30",
                "X-App-Usage": '{"estimated_time_to_regain_access": 1}',
            },
            60_000,
        ),
        ({}, None),
    ],
)
def test_rate_limit_headers_set_retry_after(
    headers: dict[str, str], retry_after_ms: int | None
) -> None:
    assert classify(429, meta_error(4), headers).retry_after_ms == retry_after_ms
    # Waiting does not fix a permanent error, so no wait is reported for one.
    assert classify(400, meta_error(100), headers).retry_after_ms is None


def test_retry_after_as_an_http_date() -> None:
    headers = {"Retry-After": formatdate(time.time() + 60, usegmt=True)}
    retry_after_ms = classify(503, None, headers).retry_after_ms
    assert retry_after_ms is not None
    assert 55_000 <= retry_after_ms <= 61_000


# --- GraphClient against the fake ----------------------------------------------------------


@dataclass
class Fake:
    """A running fake Graph API and a client session pointed at it."""

    session: aiohttp.ClientSession
    base_url: str

    def client(self, tokens: dict[str, str] | None = None, timeout_s: float = 5.0) -> GraphClient:
        tokens = {"acct-1": TOKEN} if tokens is None else tokens
        return GraphClient(self.session, at(self.base_url), tokens, timeout_s)

    async def script(self, errors: list[dict[str, Any]], latency_ms: int = 0) -> None:
        body = {"errors": errors, "latency_ms": latency_ms}
        async with self.session.post(f"{self.base_url}/_script", json=body) as response:
            assert response.status == 200

    async def sent(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.base_url}/_sent") as response:
            result: list[dict[str, Any]] = await response.json()
            return result


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    server = TestServer(create_fake_graph_app({"acct-1": TOKEN}))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Fake(session, str(server.make_url("/")).rstrip("/"))
    await server.close()


async def test_post_returns_message_ids_for_both_shapes(fake: Fake) -> None:
    client = fake.client()
    reply = one({"text": "hello"})
    [messenger] = build_requests(make_batch("messenger"), reply, VERSION)
    [whatsapp] = build_requests(make_batch("whatsapp"), reply, VERSION)
    first = await client.post(messenger)
    second = await client.post(whatsapp)
    assert first.startswith("m_")
    assert second.startswith("wamid.")
    sent = await fake.sent()
    assert [(s["account_id"], s["message_id"], s["payload"]) for s in sent] == [
        ("acct-1", first, messenger.payload),
        ("acct-1", second, whatsapp.payload),
    ]


async def test_scripted_throttle_carries_retry_after(fake: Fake) -> None:
    await fake.script(
        [{"status": 429, "code": 4, "message": "(#4) limit", "headers": {"Retry-After": "2"}}]
    )
    [request] = build_requests(make_batch(), one({"text": "hi"}), VERSION)
    with pytest.raises(GraphError) as caught:
        await fake.client().post(request)
    assert (caught.value.kind, caught.value.status, caught.value.code) == ("throttle", 429, 4)
    assert caught.value.retry_after_ms == 2000
    assert caught.value.message == "(#4) limit"
    # The script is used up: the same request now goes through.
    assert (await fake.client().post(request)).startswith("m_")


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [(500, 2, "temporary"), (503, 99999, "temporary"), (400, 100, "permanent")],
)
async def test_scripted_errors_are_sorted(fake: Fake, status: int, code: int, kind: str) -> None:
    await fake.script([{"status": status, "code": code, "message": "scripted"}])
    [request] = build_requests(make_batch("whatsapp"), one({"text": "hi"}), VERSION)
    with pytest.raises(GraphError) as caught:
        await fake.client().post(request)
    assert (caught.value.kind, caught.value.status) == (kind, status)
    assert await fake.sent() == []


async def test_missing_token_is_permanent_and_sends_nothing(fake: Fake) -> None:
    [request] = build_requests(make_batch(), one({"text": "hi"}), VERSION)
    with pytest.raises(MissingToken) as caught:
        await fake.client(tokens={"other": TOKEN}).post(request)
    assert caught.value.kind == "permanent"
    assert caught.value.account_id == "acct-1"
    assert "acct-1" in str(caught.value)
    assert await fake.sent() == []


async def test_a_wrong_token_is_permanent_and_never_shown(fake: Fake) -> None:
    secret = "EAAwrong-secret-token"
    client = fake.client(tokens={"acct-1": secret})
    [request] = build_requests(make_batch(), one({"text": "hi"}), VERSION)
    with pytest.raises(GraphError) as caught:
        await client.post(request)
    assert (caught.value.kind, caught.value.status, caught.value.code) == ("permanent", 401, 190)
    assert secret not in str(caught.value)
    assert secret not in repr(client)


async def test_a_slow_answer_times_out_as_temporary(fake: Fake) -> None:
    await fake.script([], latency_ms=300)
    [request] = build_requests(make_batch(), one({"text": "hi"}), VERSION)
    with pytest.raises(GraphError) as caught:
        await fake.client(timeout_s=0.05).post(request)
    assert (caught.value.kind, caught.value.status) == ("temporary", None)
    assert "no answer within 0.05 s" in str(caught.value)


async def test_no_server_is_temporary() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The port was just free and nothing listens on it now.
    async with aiohttp.ClientSession() as session:
        client = GraphClient(session, at(f"http://127.0.0.1:{port}"), {"acct-1": TOKEN}, 2.0)
        [request] = build_requests(make_batch(), one({"text": "hi"}), VERSION)
        with pytest.raises(GraphError) as caught:
            await client.post(request)
    assert caught.value.kind == "temporary"
    assert caught.value.status is None


async def test_an_answer_that_is_not_the_apis_is_sorted_by_status(fake: Fake) -> None:
    # A wrong base URL answers 404 text, not the API's JSON.
    client = GraphClient(fake.session, at(fake.base_url + "/elsewhere"), {"acct-1": TOKEN}, 5.0)
    [request] = build_requests(make_batch(), one({"text": "hi"}), VERSION)
    with pytest.raises(GraphError) as caught:
        await client.post(request)
    assert (caught.value.kind, caught.value.status) == ("permanent", 404)


async def test_a_success_without_an_id_is_not_taken_for_delivery() -> None:
    async def no_id(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{version}/{account_id}/messages", no_id)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            base_url = str(server.make_url("/")).rstrip("/")
            client = GraphClient(session, at(base_url), {"acct-1": TOKEN}, 5.0)
            [request] = build_requests(make_batch(), one({"text": "hi"}), VERSION)
            with pytest.raises(GraphError) as caught:
                await client.post(request)
    finally:
        await server.close()
    assert (caught.value.kind, caught.value.status) == ("temporary", 200)
