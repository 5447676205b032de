"""A sender SIGKILLed while a presence batch request is in flight (the fake Graph API holds
it) and its bot thinks: the replica that takes over sends every reply once. Presence is
best-effort (a lost batch loses only reads and typing); replies never ride in batches."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis.asyncio as aioredis

from lull.common.store.keys import SENDER_GROUP, Keys
from lull.dev.fake_graph import FakeGraph
from tests.poll import until
from tests.sender import conftest as sender_fixtures
from tests.sender.conftest import MakeSender, emit, sent_texts
from tests.sender.fake_bot import FakeBot

# The sender tests' fixtures: the fake Graph API and senders built on the test Redis.
graph_server = sender_fixtures.graph_server
graph = sender_fixtures.graph
sender_env = sender_fixtures.sender_env
make_sender = sender_fixtures.make_sender

SECRET = "bot-secret"
USERS = ["u1", "u2", "u3"]


@pytest.mark.slow
async def test_sigkill_with_a_presence_batch_in_flight_sends_every_reply_once(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    sender_env: dict[str, str],
    namespace: str,
) -> None:
    keys = Keys(namespace)
    outbound = keys.outbound(0)
    async with FakeBot(SECRET) as bot:
        bot.script(latency_ms=60_000)  # thinks until the sender is killed
        graph.script([], 0, presence_latency_ms=60_000)  # the batch stays in flight
        env = {
            **sender_env, "LULL_HANDLER": bot.url, "LULL_HANDLER_SECRET": SECRET,
            "LULL_HANDLER_TIMEOUT_MS": "120000", "LULL_CLAIM_IDLE_MS": "300",
            "LULL_CLAIM_INTERVAL_MS": "100", "LULL_PRESENCE_BATCH_MS": "300",
        }  # fmt: skip
        for user in USERS:
            await emit(redis, keys, user, 1, f"hello from {user}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "lull.sender"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        async def batch_in_flight() -> bool:
            return len(bot.received) == len(USERS) and graph.batch_requests == 1

        try:
            await until(batch_in_flight, "the bot thinks and a presence batch is in flight", 30)
            assert graph.presence_calls == len(USERS)  # the users' mark_seen, in one batch
            proc.kill()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        assert graph.sent == []

        bot.script()  # answers at once now
        graph.script([], 0)
        survivor = await make_sender(**{k: v for k, v in env.items() if k.startswith("LULL_")})

        async def all_sent() -> bool:
            await survivor.drain()
            return int((await redis.xpending(outbound, SENDER_GROUP))["pending"]) == 0

        await until(all_sent, "the survivor delivered what the dead sender held", 30)
        await survivor.deliverer.presence.idle()
    assert sorted(sent_texts(graph)) == [(user, f"echo: hello from {user}") for user in USERS]
