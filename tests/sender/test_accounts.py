"""Per-account handlers through the real sender: each account's batches reach its own bot,
signed with its own secret; a reload sends later batches to the new bot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.common.env import ConfigError
from lull.common.events import Event
from lull.dev.fake_graph import FAKE_GRAPH, FakeGraph, create_fake_graph_app
from lull.processor.arrivals import ArrivalLog
from lull.sender.settings import SenderSettings
from tests.sender.conftest import TOKENS, MakeSender, emit, sent_texts
from tests.sender.fake_bot import FakeBot
from tests.sender.test_presence import AfterPresence, actions, settle


def _accounts(path: Path, shop_url: str, brand_url: str) -> None:
    path.write_text(
        f"""\
["p1"]
platform = "messenger"
handler = "{shop_url}"
handler_secret = "${{SHOP_SECRET}}"
access_token = "${{P1_TOKEN}}"

["ig1"]
platform = "instagram"
handler = "{brand_url}"
handler_secret = "file:{path.parent / "brand_secret"}"
handler_timeout_ms = 5000
""",
        encoding="utf-8",
    )


async def test_each_accounts_batches_reach_its_own_bot(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, tmp_path: Path
) -> None:
    (tmp_path / "brand_secret").write_text("brand-secret\n", encoding="utf-8")
    path = tmp_path / "accounts.toml"
    async with FakeBot("shop-secret") as shop, FakeBot("brand-secret") as brand:
        _accounts(path, shop.url, brand.url)
        # p1's token is the file's only (LULL_ACCESS_TOKENS has ig1's).
        sender = await make_sender(
            LULL_ACCOUNTS=str(path), SHOP_SECRET="shop-secret", P1_TOKEN="page-token",
            LULL_ACCESS_TOKENS='{"ig1": "ig-token"}',
        )  # fmt: skip
        await emit(redis, sender.keys, "u1", 1, "to the shop")
        await emit(redis, sender.keys, "u2", 1, "to the brand", platform="instagram",
                   account="ig1")  # fmt: skip
        # An account the file does not name: the environment's handler (echo).
        await emit(redis, sender.keys, "u3", 1, "to the default", account="p2-unnamed")
        await sender.drain()
        assert [b["account_id"] for b in shop.received] == ["p1"]
        assert [b["account_id"] for b in brand.received] == ["ig1"]
        # Each signature checked out with the bot's own secret.
        assert (shop.state.rejected, brand.state.rejected) == (0, 0)
    # The fake bots answer "echo: " and the text; each reply went to its user.
    assert ("u1", "echo: to the shop") in sent_texts(graph)
    assert ("u2", "echo: to the brand") in sent_texts(graph)


async def test_a_reload_sends_later_batches_to_the_new_bot(
    make_sender: MakeSender, redis: aioredis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "brand_secret").write_text("brand-secret\n", encoding="utf-8")
    path = tmp_path / "accounts.toml"
    async with FakeBot("shop-secret") as shop, FakeBot("brand-secret") as brand:
        _accounts(path, shop.url, brand.url)
        sender = await make_sender(
            LULL_ACCOUNTS=str(path), SHOP_SECRET="shop-secret", P1_TOKEN="page-token"
        )
        await emit(redis, sender.keys, "u1", 1, "before")
        await sender.drain()
        # p1 moves to the brand's bot; a bad file first changes nothing.
        path.write_text('["p1"]\nhandler = "nowhere"\n', encoding="utf-8")
        assert sender.accounts is not None
        assert not sender.accounts.reload("test")
        # A secret the sender's environment does not hold: refused too.
        _accounts(path, brand.url, brand.url)
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("${SHOP_SECRET}", "${BRAND_SECRET}"), encoding="utf-8")
        assert not sender.accounts.reload("test")
        assert sender.accounts.current.of("p1").bot.handler == shop.url
        path.write_text(text.replace("${SHOP_SECRET}", f"file:{tmp_path / 'brand_secret'}"),
                        encoding="utf-8")  # fmt: skip
        assert sender.accounts.reload("test")
        await emit(redis, sender.keys, "u1", 2, "after")
        await sender.drain()
        assert [b["text"] for b in shop.received] == ["before"]
        assert [b["text"] for b in brand.received] == ["after"]
        assert brand.state.rejected == 0


def test_the_star_table_may_name_the_handler_for_everyone(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["*"]\nhandler = "echo"\n', encoding="utf-8")
    settings = SenderSettings.from_env({"LULL_ACCOUNTS": str(path)})
    assert settings.accounts is not None
    assert settings.accounts.of("anyone").bot.handler == "echo"
    with pytest.raises(ConfigError, match="LULL_HANDLER"):
        SenderSettings.from_env({})


async def test_each_account_sends_within_its_own_limit(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, tmp_path: Path
) -> None:
    # p1's sends are spaced at 10/s; ig1 keeps the environment's (no limit here).
    path = tmp_path / "accounts.toml"
    path.write_text('["p1"]\nrate_global = "10/s"\nrate_per_user = "5/1m:5"\n', encoding="utf-8")
    sender = await make_sender(LULL_ACCOUNTS=str(path))
    assert sender.deliverer.account_sends.of("p1").rates.rate_per_user is not None
    assert sender.deliverer.account_sends.of("ig1").rates.rate_per_user is None
    for n in range(4):
        await emit(redis, sender.keys, f"u{n}", 1, f"to the page {n}")
        await emit(redis, sender.keys, f"v{n}", 1, f"to the brand {n}", platform="instagram",
                   account="ig1")  # fmt: skip
    await sender.drain()
    assert len(graph.sent) == 8
    waits = sender.registry.get_sample_value(
        "lull_sender_rate_limit_waits_total", {"scope": "account"}
    )
    # p1's sends after its first (the first may wait for its slot too); none of ig1's, whose
    # 4 sends at 10/s would add as many again.
    assert waits is not None
    assert 3 <= waits <= 4


async def test_each_account_shows_its_own_presence(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, tmp_path: Path
) -> None:
    # ig1 shows no typing (its file says so); p1 keeps the environment's (typing on).
    path = tmp_path / "accounts.toml"
    path.write_text('["ig1"]\ntyping = false\n', encoding="utf-8")
    sender = await make_sender(LULL_ACCOUNTS=str(path))
    sender.deliverer.bot = AfterPresence(graph, 2, [{"text": "hi"}])
    await emit(redis, sender.keys, "u1", 1, "hello")
    await settle(sender)
    assert actions(graph) == ["mark_seen", "typing_on"]
    # The bot answers once the sender's presence work is over: typing would be shown by then.
    sender.deliverer.bot = AfterPresence(graph, 3, [{"text": "hi"}], sender=sender)
    await emit(redis, sender.keys, "u2", 1, "hello", platform="instagram", account="ig1")
    await settle(sender)
    assert actions(graph) == ["mark_seen", "typing_on", "mark_seen"]
    assert len(graph.sent) == 2


async def test_each_accounts_sends_go_to_its_own_graph_host(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, tmp_path: Path
) -> None:
    # p1's sends go to a Graph host of its own (a proxy, say), with its own version; ig1's
    # to the environment's.
    own = TestServer(create_fake_graph_app(TOKENS))
    await own.start_server()
    try:
        base = str(own.make_url("")).rstrip("/")
        path = tmp_path / "accounts.toml"
        path.write_text(
            f'["p1"]\ngraph_api_base = "{base}"\ngraph_api_version = "v99.0"\n', encoding="utf-8"
        )
        sender = await make_sender(LULL_ACCOUNTS=str(path))
        assert sender.deliverer.account_sends.of("p1").graph.version == "v99.0"
        await emit(redis, sender.keys, "u1", 1, "to the page")
        await emit(redis, sender.keys, "u2", 1, "to the brand", platform="instagram",
                   account="ig1")  # fmt: skip
        await sender.drain()
        assert [s["account_id"] for s in own.app[FAKE_GRAPH].sent] == ["p1"]
        assert [s["account_id"] for s in graph.sent] == ["ig1"]
    finally:
        await own.close()


async def test_a_coexistence_number_keeps_its_read_receipts_off(
    make_sender: MakeSender, redis: aioredis.Redis, graph: FakeGraph, tmp_path: Path
) -> None:
    # The environment marks messages read as they arrive; wa1's file says never (on a
    # coexistence number a read also marks the chat read for the human in the app).
    path = tmp_path / "accounts.toml"
    path.write_text('["wa1"]\nplatform = "whatsapp"\nread_receipts = "off"\n', encoding="utf-8")
    sender = await make_sender(LULL_ACCOUNTS=str(path), LULL_READ_RECEIPTS="arrival")
    now_ms = int(time.time() * 1000)
    await ArrivalLog(redis, sender.keys).record([
        Event("whatsapp", "wa1", "15550000002", "wamid.1", now_ms, "text", text="hi"),
        Event("messenger", "p1", "u1", "m1", now_ms, "text", text="hi"),
    ])  # fmt: skip
    await sender.drain()
    await sender.deliverer.presence.idle()
    assert [call["payload"] for call in graph.presence] == [
        {"recipient": {"id": "u1"}, "sender_action": "mark_seen"}
    ]


def test_arrival_for_one_account_needs_it_in_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["p1"]\n\nread_receipts = "arrival"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        SenderSettings.from_env({"LULL_ACCOUNTS": str(path), "LULL_HANDLER": "echo"})
    assert str(caught.value) == (
        f"{path}:3: [\"p1\"] read_receipts='arrival': arrival for one account needs "
        "LULL_READ_RECEIPTS=arrival in the environment"
    )
