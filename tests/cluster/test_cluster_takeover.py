"""Human takeover on a real 3-master Redis Cluster: the pause, history and seen keys live in
their conversation's slot, the sent-mid keys in the mid's own slot, and the close and the
sender's check find the pause with one EXISTS in their shard's slot."""

from __future__ import annotations

import time

import orjson
from aiohttp.test_utils import TestServer
from redis.asyncio.cluster import RedisCluster

from lull.common.env import Env
from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseAction, PauseSettings, PauseStore
from lull.dev.fake_graph import FAKE_GRAPH
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.cluster.conftest import SHARDS, drain_echo_sender
from tests.cluster.test_cluster import PAGE, messenger_body, users_on_every_shard

INBOX = 263902037430900


def echo_body(user: str, mid: str, text: str, t_ms: int, app_id: int | None) -> bytes:
    """The echo of a message the Page sent to user (Meta's message_echoes)."""
    message: dict[str, object] = {"is_echo": True, "mid": mid, "text": text}
    if app_id is not None:
        message["app_id"] = app_id
    item = {"sender": {"id": PAGE}, "recipient": {"id": user}, "timestamp": t_ms}
    item["message"] = message
    return orjson.dumps({"object": "page", "entry": [{"id": PAGE, "messaging": [item]}]})


async def ingest(cluster: RedisCluster, keys: Keys, raw: bytes) -> None:
    fields = {"body": raw, "received_at": int(time.time() * 1000)}
    await cluster.xadd(keys.inbound(), fields)  # type: ignore[arg-type]


async def test_a_human_pauses_conversations_on_every_master(
    cluster: RedisCluster, cluster_env: dict[str, str], namespace: str, graph_server: TestServer
) -> None:
    keys = Keys(namespace, SHARDS)
    users = users_on_every_shard(keys, 1)
    window_env = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000"}
    processor = Processor(cluster, ProcessorSettings.from_env({**cluster_env, **window_env}))
    graph = graph_server.app[FAKE_GRAPH]
    now = int(time.time() * 1000)
    for user in users:
        await ingest(cluster, keys, echo_body(user, f"m-agent-{user}", "Ana here", now, INBOX))
        await ingest(cluster, keys, messenger_body(user, f"m-{user}-1", "thanks Ana", now + 1))
    assert await processor.drain(timeout_s=20) == len(users)
    await drain_echo_sender(cluster, cluster_env, graph_server)
    assert graph.sent == []  # every batch was closed during a pause
    for user in users:
        conversation = f"messenger:{PAGE}:{user}"
        history = [orjson.loads(i) for i in await cluster.lrange(keys.history(conversation), 0, -1)]
        assert [(h["role"], h["text"]) for h in history] == [
            ("human", "Ana here"),
            ("user", "thanks Ana"),
        ]

    # The agent is done: resumed, the bot answers again; the echo of its reply (no app id,
    # as Instagram's) is told by the mid the sender remembered, in the mid's own slot.
    pauses = PauseStore(cluster, keys, PauseSettings.from_env(Env({})))
    for user in users:
        await pauses.apply(f"messenger:{PAGE}:{user}", PauseAction.RESUME)
        await ingest(cluster, keys, messenger_body(user, f"m-{user}-2", "one more thing", now + 2))
    assert await processor.drain(timeout_s=20) == len(users)
    await drain_echo_sender(cluster, cluster_env, graph_server)
    sent = {s["payload"]["recipient"]["id"]: s["message_id"] for s in graph.sent}
    assert set(sent) == set(users)
    for user, mid in sent.items():
        await ingest(cluster, keys, echo_body(user, mid, "one more thing", now + 3, None))
    await processor.drain(timeout_s=20)
    own = processor.registry.get_sample_value(
        "lull_processor_turns_total", {"platform": "messenger", "outcome": "own_echo"}
    )
    assert own == len(users)
    for user in users:
        assert await cluster.exists(keys.pause(f"messenger:{PAGE}:{user}")) == 0
