"""The fake Graph API itself: shapes, tokens, the record, and the error script."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lull.dev.fake_graph import FAKE_GRAPH, create_fake_graph_app

TOKEN = "EAAfake-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MESSENGER: dict[str, Any] = {
    "recipient": {"id": "psid-1"},
    "messaging_type": "RESPONSE",
    "message": {"text": "hello"},
}
WHATSAPP: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "15550001111",
    "type": "text",
    "text": {"body": "hello", "preview_url": False},
    "context": {"message_id": "wamid.in"},
}

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """Start a fake with the given tokens (default: acct-1 only); all closed afterwards."""
    clients: list[Client] = []

    async def factory(tokens: dict[str, str] | None = None, *, any_token: bool = False) -> Client:
        chosen = None if any_token else (tokens or {"acct-1": TOKEN})
        client: Client = TestClient(TestServer(create_fake_graph_app(chosen, first_id=1)))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


async def post(client: Client, payload: object, account: str = "acct-1", **headers: str) -> Any:
    response = await client.post(
        f"/v21.0/{account}/messages", json=payload, headers=headers or AUTH
    )
    return response.status, await response.json()


async def test_messenger_and_whatsapp_are_accepted_and_recorded(make_client: MakeClient) -> None:
    client = await make_client()
    before_ms = int(time.time() * 1000)
    status, first = await post(client, MESSENGER)
    assert (status, first) == (200, {"recipient_id": "psid-1", "message_id": "m_FAKE0000000001"})
    status, second = await post(client, WHATSAPP)
    assert status == 200
    assert second == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "15550001111", "wa_id": "15550001111"}],
        "messages": [{"id": "wamid.FAKE0000000002"}],
    }
    sent = await (await client.get("/_sent")).json()
    assert [(s["account_id"], s["payload"], s["message_id"]) for s in sent] == [
        ("acct-1", MESSENGER, "m_FAKE0000000001"),
        ("acct-1", WHATSAPP, "wamid.FAKE0000000002"),
    ]
    assert all(s["at_ms"] >= before_ms for s in sent)


async def test_whatsapp_bsuid_recipient_is_answered_as_meta_documents(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    by_bsuid = {k: v for k, v in WHATSAPP.items() if k != "to"}
    by_bsuid["recipient"] = "US.13491208655302741918"
    status, answer = await post(client, by_bsuid)
    assert status == 200
    # Sent to a BSUID only: no wa_id, the BSUID as input and user_id.
    assert answer["contacts"] == [
        {"input": "US.13491208655302741918", "user_id": "US.13491208655302741918"}
    ]
    status, answer = await post(client, {**by_bsuid, "to": "+16505551234"})
    assert status == 200
    # Both: the phone number takes precedence, the BSUID is echoed as user_id.
    assert answer["contacts"] == [
        {"input": "+16505551234", "wa_id": "16505551234", "user_id": "US.13491208655302741918"}
    ]


async def test_clearing_keeps_ids_growing(make_client: MakeClient) -> None:
    client = await make_client()
    await post(client, MESSENGER)
    response = await client.delete("/_sent")
    assert await response.json() == {"cleared": 1}
    assert await (await client.get("/_sent")).json() == []
    _, answer = await post(client, MESSENGER)
    assert answer["message_id"] == "m_FAKE0000000002"


@pytest.mark.parametrize(
    "payload",
    [
        {
            **MESSENGER,
            "message": {
                "text": "pick",
                "quick_replies": [{"content_type": "text", "title": "Red", "payload": "RED"}],
            },
        },
        {
            **MESSENGER,
            "message": {
                "attachment": {
                    "type": "file",
                    "payload": {"url": "https://h/a.pdf", "is_reusable": True},
                }
            },
        },
        {**WHATSAPP, "type": "image", "image": {"link": "https://h/a.png"}},
        {**WHATSAPP, "type": "document", "document": {"link": "https://h/a.pdf", "filename": "a"}},
        {
            **WHATSAPP,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "pick"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "R", "title": "Red"}}]},
            },
        },
        {**WHATSAPP, "text": {"body": "x" * 4096}},
    ],
)
async def test_other_valid_shapes(make_client: MakeClient, payload: dict[str, Any]) -> None:
    status, _ = await post(await make_client(), payload)
    assert status == 200


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not an object", "must be a JSON object"),
        ({**MESSENGER, "recipient": {}}, "recipient[id]"),
        ({**MESSENGER, "messaging_type": "PUSH"}, "messaging_type"),
        ({**MESSENGER, "messaging_type": ["RESPONSE"]}, "messaging_type"),
        ({**MESSENGER, "message": {}}, "exactly one of text or attachment"),
        ({**MESSENGER, "message": {"text": "x" * 2001}}, "<= 2000"),
        ({**MESSENGER, "message": {"attachment": {"type": "gif", "payload": {}}}}, "type"),
        ({**MESSENGER, "message": {"attachment": {"type": "image", "payload": {}}}}, "url"),
        ({**MESSENGER, "message": {"text": "x", "quick_replies": []}}, "1 to 13"),
        (
            {**MESSENGER, "message": {"text": "x", "quick_replies": [{"content_type": "text"}]}},
            "title and a payload",
        ),
        ({**WHATSAPP, "messaging_product": "sms"}, "messaging_product"),
        ({**WHATSAPP, "to": ""}, "param to"),
        ({k: v for k, v in WHATSAPP.items() if k != "to"}, "param to (a phone number) or"),
        ({**WHATSAPP, "to": "US.13491208655302741918"}, "send to a business-scoped user id in"),
        ({**WHATSAPP, "recipient": "16505551234"}, "param recipient must be a business-scoped"),
        ({**WHATSAPP, "recipient": {"id": "US.1"}}, "param recipient must be a business-scoped"),
        ({**WHATSAPP, "recipient_type": "group"}, "recipient_type"),
        ({**WHATSAPP, "context": {}}, "context"),
        ({**WHATSAPP, "type": "image"}, "param type must name an object"),
        ({**WHATSAPP, "text": {"body": ""}}, "text[body]"),
        ({**WHATSAPP, "text": {"body": "x" * 4097}}, "at most 4096"),
        ({**WHATSAPP, "type": "audio", "audio": {}}, "exactly one of link or id"),
        ({**WHATSAPP, "type": "video", "video": {"link": "file:///x"}}, "http(s) URL"),
        ({**WHATSAPP, "type": "location", "location": {}}, "does not support"),
        ({**WHATSAPP, "type": "interactive", "interactive": {"type": "list"}}, "only"),
        (
            {
                **WHATSAPP,
                "type": "interactive",
                "interactive": {"type": "button", "body": {"text": "x"}, "action": {"buttons": []}},
            },
            "1 to 3",
        ),
        (
            {
                **WHATSAPP,
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "x"},
                    "action": {"buttons": ["b"]},
                },
            },
            "each button",
        ),
        (
            {
                **WHATSAPP,
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "x"},
                    "action": {
                        "buttons": [{"type": "reply", "reply": {"id": "a", "title": "t" * 21}}]
                    },
                },
            },
            "1 to 20",
        ),
        (
            {
                **WHATSAPP,
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "x" * 1025},
                    "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "t"}}]},
                },
            },
            "1 to 1024",
        ),
        (
            {
                **WHATSAPP,
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "x"},
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": "a", "title": "t"}},
                            {"type": "reply", "reply": {"id": "b", "title": "t"}},
                        ]
                    },
                },
            },
            "unique",
        ),
    ],
)
async def test_bad_shapes_answer_400_code_100(
    make_client: MakeClient, payload: object, reason: str
) -> None:
    client = await make_client()
    status, body = await post(client, payload)
    assert (status, body["error"]["code"]) == (400, 100)
    assert reason in body["error"]["message"]
    assert await (await client.get("/_sent")).json() == []


async def test_a_body_that_is_not_json_is_400(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post("/v21.0/acct-1/messages", data=b"{", headers=AUTH)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == 100


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
)
async def test_bad_tokens_answer_401_code_190(
    make_client: MakeClient, headers: dict[str, str]
) -> None:
    client = await make_client()
    response = await client.post("/v21.0/acct-1/messages", json=MESSENGER, headers=headers)
    body = await response.json()
    assert (response.status, body["error"]["code"]) == (401, 190)
    assert body["error"]["type"] == "OAuthException"


async def test_a_token_is_good_for_its_own_account_only(make_client: MakeClient) -> None:
    client = await make_client({"acct-1": TOKEN, "acct-2": "other"})
    status, _ = await post(client, MESSENGER, account="acct-2")
    assert status == 401
    status, _ = await post(client, MESSENGER, account="acct-3")
    assert status == 401


async def test_without_tokens_any_bearer_token_and_the_query_parameter_pass(
    make_client: MakeClient,
) -> None:
    client = await make_client(any_token=True)
    status, _ = await post(client, MESSENGER, account="any", Authorization="Bearer whatever")
    assert status == 200
    response = await client.post("/v21.0/any/messages?access_token=t", json=MESSENGER)
    assert response.status == 200
    status, _ = await post(client, MESSENGER, Authorization="")
    assert status == 401


async def test_scripted_errors_answer_in_order_then_requests_pass(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    script = {
        "errors": [
            {
                "status": 429,
                "code": 4,
                "message": "(#4) limit",
                "count": 2,
                "headers": {"Retry-After": "7"},
            },
            {"status": 500, "code": 2, "subcode": 99, "message": "down"},
        ],
    }
    response = await client.post("/_script", json=script)
    assert await response.json() == {"pending_errors": 3, "latency_ms": 0}
    # A bad token does not use up a scripted error.
    assert (await client.post("/v21.0/acct-1/messages", json=MESSENGER)).status == 401
    seen = []
    for _ in range(4):
        response = await client.post("/v21.0/acct-1/messages", json=MESSENGER, headers=AUTH)
        body = await response.json()
        error = body.get("error", {})
        seen.append(
            (
                response.status,
                error.get("code"),
                error.get("error_subcode"),
                response.headers.get("Retry-After"),
            )
        )
    assert seen == [
        (429, 4, None, "7"),
        (429, 4, None, "7"),
        (500, 2, 99, None),
        (200, None, None, None),
    ]
    assert len(await (await client.get("/_sent")).json()) == 1


async def test_latency_delays_every_request(make_client: MakeClient) -> None:
    client = await make_client()
    await client.post("/_script", json={"errors": [], "latency_ms": 60})
    assert client.app[FAKE_GRAPH].latency_ms == 60
    started = time.perf_counter()
    status, _ = await post(client, MESSENGER)
    assert status == 200
    assert time.perf_counter() - started >= 0.06


@pytest.mark.parametrize(
    "script",
    [
        [],
        {"latency_ms": -1},
        {"latency_ms": "10"},
        {"errors": {}},
        {"errors": ["x"]},
        {"errors": [{"status": 200, "code": 1}]},
        {"errors": [{"status": 429}]},
        {"errors": [{"status": 429, "code": 4, "count": 0}]},
        {"errors": [{"status": 429, "code": 4, "subcode": "x"}]},
        {"errors": [{"status": 429, "code": 4, "message": 5}]},
        {"errors": [{"status": 429, "code": 4, "headers": {"Retry-After": 5}}]},
        {"errors": [{"status": 400, "code": 131048, "details": ["x"]}]},
    ],
)
async def test_bad_scripts_are_refused(make_client: MakeClient, script: object) -> None:
    client = await make_client()
    response = await client.post("/_script", json=script)
    assert response.status == 400
    assert (await response.json())["error"]["message"]


async def test_a_script_body_that_is_not_json_is_refused(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post("/_script", data=b"nope")
    assert response.status == 400


async def test_only_versioned_message_paths_exist(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post("/latest/acct-1/messages", json=MESSENGER, headers=AUTH)
    assert response.status == 404


async def test_pass_thread_control_in_meta_documented_shape(make_client: MakeClient) -> None:
    client = await make_client()
    body = {"recipient": {"id": "psid-1"}, "target_app_id": 263902037430900, "metadata": "r"}
    response = await client.post("/v23.0/me/pass_thread_control", json=body, headers=AUTH)
    assert response.status == 200
    assert await response.json() == {"success": True}
    response = await client.get("/_thread_control")
    [passed] = await response.json()
    assert (passed["account_id"], passed["payload"]) == ("acct-1", body)
    for bad in ({"target_app_id": "1"}, {"recipient": {"id": "p"}, "target_app_id": "x"},
                {"recipient": {"id": "p"}, "target_app_id": "1", "metadata": 3}):  # fmt: skip
        response = await client.post("/v23.0/acct-1/pass_thread_control", json=bad, headers=AUTH)
        assert response.status == 400
        assert (await response.json())["error"]["code"] == 100
    response = await client.post("/v23.0/acct-1/pass_thread_control", json=body)
    assert response.status == 401
    assert len(client.app[FAKE_GRAPH].thread_control) == 1


async def test_message_ids_never_repeat_across_runs() -> None:
    # Issue 21: every `lull fake-graph` counted from 1, so a second `make run` answered the
    # ids the sender had remembered from the first (echo detection, WhatsApp statuses).
    ids = []
    for _ in range(2):
        async with TestClient(TestServer(create_fake_graph_app(None))) as client:
            answer = await client.post(
                "/v23.0/acct-1/messages", json=MESSENGER, headers={"Authorization": "Bearer t"}
            )
            ids.append((await answer.json())["message_id"])
    assert ids[0] != ids[1], ids
    assert all(i.startswith("m_FAKE") and i.removeprefix("m_FAKE").isdigit() for i in ids)


async def test_the_fake_answers_metas_window_errors_for_a_user_it_was_told_wrote_long_ago(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    late_ms = int(time.time() * 1000) - 25 * 3600 * 1000
    for user in ("psid-1", "15550001111"):
        response = await client.post("/_user_wrote", json={"user": user, "at_ms": late_ms})
        assert response.status == 200
    status, body = await post(client, MESSENGER)
    assert status == 400
    assert (body["error"]["code"], body["error"]["error_subcode"]) == (10, 2018278)
    status, body = await post(client, WHATSAPP)
    assert (status, body["error"]["code"]) == (400, 131047)
    tagged = {**MESSENGER, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    assert (await post(client, tagged))[0] == 200
    template = {**WHATSAPP, "type": "template",
                "template": {"name": "hello_world", "language": {"code": "en_US"}}}  # fmt: skip
    del template["text"]
    assert (await post(client, template))[0] == 200
    # A tag needs MESSAGE_TAG and a tag Meta has, at any time.
    status, body = await post(client, {**MESSENGER, "tag": "HUMAN_AGENT"})
    assert (status, body["error"]["code"]) == (400, 100)
    bad = {**MESSENGER, "messaging_type": "MESSAGE_TAG", "tag": "NOT_A_TAG"}
    assert (await post(client, bad))[0] == 400
    bad_body = await client.post("/_user_wrote", json={"user": "u", "at_ms": "soon"})
    assert bad_body.status == 400
    graph = client.app[FAKE_GRAPH]
    assert graph.message_calls == 6
