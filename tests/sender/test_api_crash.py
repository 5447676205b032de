"""A send API message survives a sender SIGKILL between its accept and its send: a real
sender process holds it (waiting its turn behind a batch whose bot is thinking), is killed,
and the replica that takes over sends it once, in order; the same POST again sends nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis.asyncio as aioredis

from lull.common.conversation import Conversation
from lull.common.store.api_messages import ApiMessageStore, ApiSend, new_message_id
from lull.common.store.keys import SENDER_GROUP, Keys
from lull.dev.fake_graph import FakeGraph
from tests.poll import until
from tests.sender.conftest import MakeSender, emit, sent_texts
from tests.sender.fake_bot import FakeBot

SECRET = "bot-secret"
CONVERSATION = "messenger:p1:u1"


async def accept(store: ApiMessageStore, keys: Keys, key: str) -> tuple[str, str]:
    """The send API's step for one text: (message id, accepted | repeated)."""
    send = ApiSend(new_message_id(keys, CONVERSATION), "bot", False, [{"text": "it ships"}])
    accepted = await store.accept(
        Conversation.parse(CONVERSATION), key, send, conversation_ttl_s=3600
    )
    return accepted.message_id, accepted.status


@pytest.mark.slow
async def test_sigkill_between_the_accept_and_the_send_sends_once(
    make_sender: MakeSender,
    redis: aioredis.Redis,
    graph: FakeGraph,
    sender_env: dict[str, str],
    namespace: str,
) -> None:
    keys = Keys(namespace)
    store = ApiMessageStore(redis, keys)
    outbound = keys.outbound(0)
    async with FakeBot(SECRET) as bot:
        bot.script(latency_ms=60_000)  # thinks until the sender is killed
        env = {
            **sender_env, "LULL_HANDLER": bot.url, "LULL_HANDLER_SECRET": SECRET,
            "LULL_HANDLER_TIMEOUT_MS": "120000", "LULL_CLAIM_IDLE_MS": "300",
            "LULL_CLAIM_INTERVAL_MS": "100",
        }  # fmt: skip
        await emit(redis, keys, "u1", 1, "where is my order?")
        message_id, status = await accept(store, keys, "order-42")
        assert status == "accepted"
        proc = subprocess.Popen(
            [sys.executable, "-m", "lull.sender"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        async def holding_both() -> bool:
            summary = await redis.xpending(outbound, SENDER_GROUP)
            return len(bot.received) == 1 and summary["pending"] == 2

        try:
            # The batch is with the bot, the API message waits its turn: both held.
            await until(
                holding_both,
                "the sender holds the batch and the API message",
                30,
                tolerate=(aioredis.ResponseError,),  # its group is not created yet
            )
            proc.kill()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        assert graph.sent == []

        # A retried POST after the crash: the same message, nothing new stored.
        assert await accept(store, keys, "order-42") == (message_id, "repeated")
        bot.script()  # answers at once now
        survivor = await make_sender(**{k: v for k, v in env.items() if k.startswith("LULL_")})

        async def all_sent() -> bool:
            await survivor.drain()
            return int((await redis.xpending(outbound, SENDER_GROUP))["pending"]) == 0

        await until(all_sent, "the survivor delivered what the dead sender held", 30)
    assert sent_texts(graph) == [("u1", "echo: where is my order?"), ("u1", "it ships")]
    record = await store.read(message_id)
    assert record is not None and record["state"] == "sent"
