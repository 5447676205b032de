"""Per-account handoffs through the real sender, the fake Graph API and loopback webhooks:
each account's handoff goes to its own target and webhook (signed with its own handler
secret, tried its own number of times) and pauses for its own time; a reload changes the
handoffs made after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from lull.common import signing
from lull.dev.fake_graph import FakeGraph
from lull.sender.bot import SIGNATURE_HEADER
from tests.sender.conftest import MakeSender, emit
from tests.sender.test_handoff import HANDOFF_BOT, PAGE_INBOX, FakeCrm, handoffs, pause_of

ACCOUNTS = """\
["*"]
handler = "{bot}"
human_pause_max_ms = 7200000

["p1"]
platform = "messenger"
handler_secret = "${{SHOP_SECRET}}"
handoff_target = "page_inbox"
handoff_webhook = "{shop_crm}?token=in-the-query"

["ig1"]
platform = "instagram"
handoff_webhook = "${{BRAND_CRM}}"
handoff_webhook_attempts = 1
human_pause_ms = 120000
"""


@pytest.fixture
async def two_crms() -> AsyncIterator[tuple[FakeCrm, str, FakeCrm, str]]:
    """Two CRM webhooks on loopback (the shop's, the brand's) and their URLs."""
    fakes, servers, urls = [FakeCrm(), FakeCrm()], [], []
    for fake in fakes:
        app = web.Application()
        app.router.add_post("/handoff", fake.handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        urls.append(str(server.make_url("/handoff")))
    yield fakes[0], urls[0], fakes[1], urls[1]
    for server in servers:
        await server.close()


def _write(path: Path, shop_crm: str, text: str = ACCOUNTS) -> None:
    path.write_text(text.format(bot=HANDOFF_BOT, shop_crm=shop_crm), encoding="utf-8")


async def test_each_account_hands_off_to_its_own_target_and_webhook(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    two_crms: tuple[FakeCrm, str, FakeCrm, str],
    tmp_path: Path,
) -> None:
    shop, shop_url, brand, brand_url = two_crms
    brand.statuses = [500]
    path = tmp_path / "accounts.toml"
    _write(path, shop_url)
    sender = await make_sender(
        LULL_ACCOUNTS=str(path), SHOP_SECRET="shop-secret", BRAND_CRM=brand_url,
        LULL_HANDLER_SECRET="env-secret", LULL_HUMAN_PAUSE_MS="1000",
        LULL_HANDOFF_TARGET="none",
    )  # fmt: skip
    await emit(redis, sender.keys, "u1", 1, "refund please")
    await emit(redis, sender.keys, "u2", 1, "a human please", platform="instagram",
               account="ig1")  # fmt: skip
    await sender.drain()

    # p1 passes the thread to the Page Inbox; ig1's target is the environment's, none.
    assert [(t["account_id"], t["payload"]["target_app_id"]) for t in graph.thread_control] == [
        ("p1", PAGE_INBOX)
    ]
    # Each webhook heard of its own account only, signed with that account's secret.
    [(shop_headers, shop_body)] = shop.received
    assert orjson.loads(shop_body)["conversation"] == "messenger:p1:u1"
    assert signing.check(shop_headers[SIGNATURE_HEADER], shop_body, ("shop-secret",)) is None
    # ig1 tries once (its own attempts), then gives up: the batch is finished all the same.
    [(brand_headers, brand_body)] = brand.received
    assert orjson.loads(brand_body)["conversation"] == "instagram:ig1:u2"
    assert signing.check(brand_headers[SIGNATURE_HEADER], brand_body, ("env-secret",)) is None
    assert handoffs(sender, "instagram", "notify_failed") == 1
    assert handoffs(sender, "messenger", "paused") == 1

    # p1's thread is held by the inbox: until its cap; ig1 pauses for its own quiet time.
    held = await pause_of(redis, sender, "messenger:p1:u1")
    assert held is not None and held.hold
    assert held.until_ms - held.since_ms == 7_200_000
    paused = await pause_of(redis, sender, "instagram:ig1:u2")
    assert paused is not None and not paused.hold
    assert paused.until_ms - paused.since_ms == 120_000


async def test_a_reload_changes_the_handoffs_made_after_it(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    two_crms: tuple[FakeCrm, str, FakeCrm, str],
    tmp_path: Path,
) -> None:
    shop, shop_url, brand, brand_url = two_crms
    path = tmp_path / "accounts.toml"
    _write(path, shop_url)
    sender = await make_sender(
        LULL_ACCOUNTS=str(path), SHOP_SECRET="shop-secret", BRAND_CRM=brand_url
    )
    await emit(redis, sender.keys, "u1", 1, "refund please")
    await sender.drain()
    assert (len(graph.thread_control), len(shop.received)) == (1, 1)

    # p1 now only pauses (no target), for 60 s, and tells the brand's CRM.
    changed = ACCOUNTS.replace('handoff_target = "page_inbox"', "human_pause_ms = 60000")
    changed = changed.replace('"{shop_crm}?token=in-the-query"', '"${{BRAND_CRM}}"')
    _write(path, shop_url, changed)
    assert sender.accounts is not None and sender.accounts.reload("test")
    await emit(redis, sender.keys, "u3", 1, "refund again")
    await sender.drain()
    assert len(graph.thread_control) == 1
    assert len(shop.received) == 1
    [(_, body)] = brand.received
    assert orjson.loads(body)["conversation"] == "messenger:p1:u3"
    pause = await pause_of(redis, sender, "messenger:p1:u3")
    assert pause is not None and not pause.hold
    assert pause.until_ms - pause.since_ms == 60_000
