"""Example batches for docs/contract.md, made by lull itself from the webhook fixtures.

For each platform, two webhooks of one user go through a real processor and a real sender
(an HTTP bot on loopback, the fake Graph API): the bot answers the first turn, so the second
turn's batch, the example, carries a history with the user's first message and the bot's
reply. What the bot received is shown as it came, except the clock readings of the run.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.common.store.keys import Keys
from lull.dev.fake_graph import create_fake_graph_app
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from lull.sender.app import Sender
from lull.sender.settings import SenderSettings
from tests.conftest import FIXTURES
from tests.sender.fake_bot import FakeBot

# Two turns of one user per platform: (first webhook, second webhook), fixture names.
TURNS = {
    "messenger": ("messenger/text", "messenger/quick_reply"),
    "instagram": ("instagram/text", "instagram/attachments_image"),
    "whatsapp": ("whatsapp/text", "whatsapp/image"),
}
TOKENS = {"106000000000001": "page-token", "17841400000000001": "ig-token",
          "106540352242922": "wa-token"}  # fmt: skip
# Event times come from the fixtures; the clock readings of the run (received_at, opened_at,
# closed_at) differ on every run. In the docs they are moved, keeping the run's intervals, so
# that the first message arrived this long after the user sent it.
SHOWN_DELAY_MS = 150
# A conversation's seqs start from the Redis clock when its state is new (common/store/lua/
# conversation_life.lua), so they differ on every run too; the docs show them as if its life
# had begun at this moment (2025-12-01 12:00Z).
SHOWN_LIFE_MS = 1_764_590_400_000


async def example_batches(redis: aioredis.Redis, base_env: dict[str, str]) -> dict[str, Any]:
    """What the bot received for each platform's second turn, clock readings moved."""
    processor = Processor(
        redis,
        ProcessorSettings.from_env({"LULL_WINDOW_MS": "20", "LULL_MAX_WAIT_MS": "1000",
                                    **base_env}),
    )  # fmt: skip
    graph = TestServer(create_fake_graph_app(TOKENS, first_id=1))  # the docs show its ids
    await graph.start_server()
    try:
        async with FakeBot("example-secret") as bot:
            env = {
                **base_env,
                "LULL_HANDLER": bot.url,
                "LULL_HANDLER_SECRET": "example-secret",
                "LULL_GRAPH_API_BASE": str(graph.make_url("")).rstrip("/"),
                "LULL_ACCESS_TOKENS": orjson.dumps(TOKENS).decode(),
                "LULL_SENDER_METRICS_PORT": "0",
            }
            sender = await Sender.create(redis, SenderSettings.from_env(env))
            try:
                # One platform, one turn at a time: the fake Graph API's message ids (in
                # the history) then come in the same order on every run.
                for names in TURNS.values():
                    for name in names:
                        await _ingest(redis, processor, name)
                        await processor.drain()
                        await _wrote_now(redis, processor.keys)
                        await sender.drain()
            finally:
                await sender.close()
            received = list(bot.received)
    finally:
        await graph.close()
    first: dict[str, int] = {}
    last: dict[str, dict[str, Any]] = {}
    for batch in received:
        first.setdefault(batch["platform"], batch["seq"])
        last[batch["platform"]] = batch
    # Each platform's second turn: one conversation, the life's seqs base+1 and base+2.
    return {platform: shown(last[platform], first[platform] - 1) for platform in TURNS}


async def _ingest(redis: aioredis.Redis, processor: Processor, name: str) -> None:
    """What ingest stores for one accepted POST of the fixture."""
    body = (FIXTURES / f"{name}.json").read_bytes()
    fields = {"body": body, "received_at": int(time.time() * 1000), "sig": "ok"}
    await redis.xadd(processor.keys.inbound(), fields)  # type: ignore[arg-type]


async def _wrote_now(redis: aioredis.Redis, keys: Keys) -> None:
    """The fixtures were written in 2025, past Meta's 24-hour window, where the bot's replies
    would not be sent: the docs show a conversation whose user wrote just now."""
    now_ms = int(time.time() * 1000)
    for shard in range(len(keys.all_outbound())):
        async for key in redis.scan_iter(match=keys.conversation_state_prefix(shard) + "*"):
            await redis.hset(key, "user_last_ms", now_ms)


def clock_paths(batch: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(object, key) of every reading of lull's clock in the batch."""
    paths = [(batch, "opened_at"), (batch, "closed_at"), (batch, "reply_window_ends_at")]
    return paths + [(message, "received_at") for message in batch["messages"]]


def shown(batch: dict[str, Any], life_ms: int) -> dict[str, Any]:
    """The batch with its clock readings moved: the first message received SHOWN_DELAY_MS
    after its event time, its seq counted from SHOWN_LIFE_MS instead of life_ms."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(batch))
    _set_seq(copy, copy["seq"] - life_ms + SHOWN_LIFE_MS)
    first = copy["messages"][0]
    shift = first["event_time"] + SHOWN_DELAY_MS - first["received_at"]
    for obj, key in clock_paths(copy):
        obj[key] += shift
    return copy


def without_clock(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with every clock reading zeroed: what two runs have in common."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(batch))
    for obj, key in clock_paths(copy):
        obj[key] = 0
    _set_seq(copy, 0)
    return copy


def _set_seq(batch: dict[str, Any], seq: int) -> None:
    batch["seq"] = seq
    batch["batch_id"] = f"{batch['conversation']}:{seq}"
