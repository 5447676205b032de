"""Instagram's two send paths and its text limit, through a real sender, with a second fake
Graph API standing in for the Instagram host.

Meta's pages: Instagram API with Facebook Login sends `POST graph.facebook.com/{version}/
{page-id}/messages` (example: `/me/messages`) with the linked Page's token; Instagram API with
Instagram Login sends `POST graph.instagram.com/{version}/{ig-id}/messages` with an Instagram
User token. "Message text must be UTF-8 and be a 1000 bytes or less", "less than 1000
characters".
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.common.env import ConfigError
from lull.common.store.deliveries import SendState
from lull.dev.fake_graph import FAKE_GRAPH, FakeGraph, create_fake_graph_app, messenger_problem
from lull.sender.graph.client import GraphRequest, GraphRoutes
from lull.sender.settings import SenderSettings
from tests.sender.conftest import TOKENS, MakeSender, emit, sent_texts

IG_ACCOUNT = "17841400000000001"
IG_USER_TOKEN = "IGAA-instagram-user-token"
PAGE = "100000000000001"
PAGE_TOKEN = "EAA-page-token-of-the-linked-page"
# 1999 characters, 2399 UTF-8 bytes: one message on Messenger, three on Instagram.
CAFE = " ".join(["café"] * 400)


@pytest.fixture
async def instagram_server() -> AsyncIterator[TestServer]:
    """The Instagram host's fake: the Instagram account signs with an Instagram User token,
    the linked Page with its Page token."""
    tokens = {IG_ACCOUNT: IG_USER_TOKEN, PAGE: PAGE_TOKEN}
    server = TestServer(create_fake_graph_app(tokens, instagram=True))
    await server.start_server()
    yield server
    await server.close()


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def tokens_with(instagram_token: str) -> str:
    return orjson.dumps({**TOKENS, IG_ACCOUNT: instagram_token}).decode()


async def test_instagram_login_sends_to_the_instagram_host_as_the_instagram_account(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, instagram_server: TestServer
) -> None:
    sender = await make_sender(
        LULL_INSTAGRAM_LOGIN="instagram",
        LULL_GRAPH_API_BASE_INSTAGRAM=url_of(instagram_server),
        LULL_ACCESS_TOKENS=tokens_with(IG_USER_TOKEN),
    )
    await emit(redis, sender.keys, "igsid-1", 1, CAFE, platform="instagram", account=IG_ACCOUNT)
    await emit(redis, sender.keys, "psid-1", 1, CAFE)
    await sender.drain()
    instagram = instagram_server.app[FAKE_GRAPH]
    assert {sent["account_id"] for sent in instagram.sent} == {IG_ACCOUNT}
    chunks = [text for _user, text in sent_texts(instagram)]
    assert len(chunks) == 3
    assert all(len(chunk.encode()) <= 999 for chunk in chunks)
    assert " ".join(chunks) == CAFE
    # Messenger still goes to LULL_GRAPH_API_BASE, in one message of 1999 characters.
    assert sent_texts(graph) == [("psid-1", CAFE)]


async def test_facebook_login_sends_as_the_page_whose_token_it_holds(
    make_sender: MakeSender, redis: aioredis.Redis, instagram_server: TestServer
) -> None:
    # The Instagram account's token is its linked Page's: `/me/messages` sends as that Page.
    # (The fake knows the Page's token only under the Page id, so a send to
    # /{ig-account}/messages would be refused as unauthorized.)
    sender = await make_sender(
        LULL_GRAPH_API_BASE_INSTAGRAM=url_of(instagram_server),
        LULL_ACCESS_TOKENS=tokens_with(PAGE_TOKEN),
    )
    await emit(redis, sender.keys, "igsid-1", 1, CAFE, platform="instagram", account=IG_ACCOUNT)
    await sender.drain()
    instagram = instagram_server.app[FAKE_GRAPH]
    assert {sent["account_id"] for sent in instagram.sent} == {PAGE}
    assert len(sent_texts(instagram)) == 3
    assert await redis.xlen(sender.keys.dead()) == 0


BASE = "LULL_GRAPH_API_BASE"
ON_INSTAGRAM = "LULL_GRAPH_API_BASE_INSTAGRAM"
FAKE = "http://127.0.0.1:8090"


@pytest.mark.parametrize(
    ("env", "messenger", "instagram", "whatsapp"),
    [
        ({}, "https://graph.facebook.com", "https://graph.facebook.com", "https://graph.facebook.com"),
        ({BASE: FAKE + "/"}, FAKE, FAKE, FAKE),
        (
            {"LULL_INSTAGRAM_LOGIN": "instagram"},
            "https://graph.facebook.com", "https://graph.instagram.com", "https://graph.facebook.com",
        ),
        # LULL_GRAPH_API_BASE stays every platform's host, so `make run` keeps everything local.
        ({"LULL_INSTAGRAM_LOGIN": "Instagram", BASE: FAKE}, FAKE, FAKE, FAKE),
        (
            {BASE: FAKE, ON_INSTAGRAM: "https://ig.proxy", "LULL_GRAPH_API_BASE_WHATSAPP": "http://wa"},
            FAKE, "https://ig.proxy", "http://wa",
        ),
        ({"LULL_GRAPH_API_BASE_MESSENGER": FAKE}, FAKE, "https://graph.facebook.com",
         "https://graph.facebook.com"),
    ],
)  # fmt: skip
def test_a_graph_host_per_platform(
    env: dict[str, str], messenger: str, instagram: str, whatsapp: str
) -> None:
    routes = SenderSettings.from_env({"LULL_HANDLER": "echo", **env}).graph_routes
    assert [routes.route(p, "acct").base_url for p in ("messenger", "instagram", "whatsapp")] == [
        messenger,
        instagram,
        whatsapp,
    ]


@pytest.mark.parametrize(
    ("env", "name", "says"),
    [
        ({"LULL_INSTAGRAM_LOGIN": "both"}, "LULL_INSTAGRAM_LOGIN", "one of facebook, instagram"),
        ({ON_INSTAGRAM: "graph.instagram.com"}, ON_INSTAGRAM, "an http(s) URL"),
        ({"LULL_GRAPH_API_BASE_WHATSAPP": "ftp://x"}, "LULL_GRAPH_API_BASE_WHATSAPP", "http(s)"),
        (
            {"LULL_INSTAGRAM_LOGIN": "instagram", BASE: "https://graph.facebook.com"},
            BASE, "Instagram Login is served by https://graph.instagram.com",
        ),
        (
            {"LULL_INSTAGRAM_LOGIN": "instagram", ON_INSTAGRAM: "https://graph.facebook.com/"},
            ON_INSTAGRAM, "Instagram Login is served by https://graph.instagram.com",
        ),
        (
            {ON_INSTAGRAM: "https://graph.instagram.com"},
            ON_INSTAGRAM, "not Instagram with LULL_INSTAGRAM_LOGIN=facebook",
        ),
        ({BASE: "https://graph.instagram.com"}, BASE, "not messenger"),
    ],
)  # fmt: skip
def test_bad_graph_hosts_are_refused_with_a_reason(
    env: dict[str, str], name: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        SenderSettings.from_env({"LULL_HANDLER": "echo", **env})
    assert caught.value.name == name
    assert says in str(caught.value)


def test_progress_saved_before_hosts_per_platform_still_decodes() -> None:
    # A batch half sent by lull 0.1 (no platform in its requests, no throttle count) resumes:
    # its requests go to LULL_GRAPH_API_BASE, as they would have then.
    path = f"/v23.0/{IG_ACCOUNT}/messages"
    request = {"account_id": IG_ACCOUNT, "path": path, "payload": {}}
    old = {b"requests": orjson.dumps([request]), b"sent": b"0", b"attempts": b"2"}
    state = SendState.decode(old)
    assert state.requests == [GraphRequest(IG_ACCOUNT, path, {})]
    assert (state.attempts, state.throttles) == (2, 0)
    routes = GraphRoutes({"instagram": "https://graph.instagram.com"}, FAKE)
    assert routes.route(state.requests[0].platform, IG_ACCOUNT).base_url == FAKE
    # And what is saved now comes back as it was saved.
    state.throttles = 3
    saved = {str(k).encode(): _bytes(v) for k, v in state.encode().items()}
    assert SendState.decode(saved) == state


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("x" * 999, None),
        ("x" * 1000, "less than 1000 characters"),
        ("é" * 500, None),
        ("é" * 501, "1000 bytes or less"),
    ],
)
def test_the_instagram_fake_holds_text_to_instagrams_limit(text: str, refused: str | None) -> None:
    body = {"recipient": {"id": "igsid-1"}, "messaging_type": "RESPONSE", "message": {"text": text}}
    problem = messenger_problem(body, instagram=True)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None and refused in problem
    # Messenger's limit is 2000 characters.
    assert messenger_problem(body) is None
