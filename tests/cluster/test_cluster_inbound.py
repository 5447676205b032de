"""The inbound stream split in three (LULL_INBOUND_SHARDS=3) on the 3-master cluster: one
part on each master, and a burst of bodies of several conversations through ingest,
processor and sender."""

from __future__ import annotations

from aiohttp.test_utils import TestServer
from redis.asyncio.cluster import RedisCluster

from lull.common.store.keys import PROCESSOR_GROUP, Keys
from lull.dev.fake_graph import FAKE_GRAPH
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.cluster.conftest import SHARDS, drain_echo_sender
from tests.cluster.test_cluster import node_of
from tests.inbound.bodies import messenger_body, post_all, users_on_parts
from tests.processor.windowing import redis_now_ms
from tests.sender.conftest import sent_texts

PARTS = 3
ROUNDS = 3


async def test_inbound_parts_lie_on_every_master_and_a_burst_goes_through(
    cluster: RedisCluster,
    cluster_env: dict[str, str],
    namespace: str,
    graph_server: TestServer,
) -> None:
    env = {**cluster_env, "LULL_INBOUND_SHARDS": str(PARTS)}
    keys = Keys(namespace, SHARDS, inbound_parts=PARTS)
    streams = keys.all_inbound()
    assert len({node_of(cluster, stream) for stream in streams}) == len(cluster.get_primaries())

    # Users part by part (p0, p1, p2, p0, ...); each body holds three users' n-th messages,
    # so it is copied to every part: one POST, three XADDs on three masters.
    users = [user for row in zip(*users_on_parts(PARTS, 2), strict=True) for user in row]
    now = await redis_now_ms(cluster)  # type: ignore[arg-type]
    bodies = [
        messenger_body([(u, f"{u}-m{n}", f"{u} says {n}", now + 10 * n) for u in users[i : i + 3]])
        for n in range(ROUNDS)
        for i in range(0, len(users), 3)
    ]
    assert await post_all(env, bodies) == [200] * len(bodies)
    assert [await cluster.xlen(stream) for stream in streams] == [len(bodies)] * PARTS

    window = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000"}
    processor = Processor(cluster, ProcessorSettings.from_env({**env, **window}))
    assert await processor.drain(timeout_s=20) == len(users)
    await drain_echo_sender(cluster, env, graph_server)

    expected = [(u, "\n".join(f"{u} says {n}" for n in range(ROUNDS))) for u in users]
    assert sorted(sent_texts(graph_server.app[FAKE_GRAPH])) == sorted(expected)
    for stream in streams:
        assert (await cluster.xpending(stream, PROCESSOR_GROUP))["pending"] == 0
    assert await cluster.xlen(keys.dead()) == 0
