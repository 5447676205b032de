"""lull on a real 3-master Redis Cluster: a burst through ingest, processor and sender with
shards on every master, and the consumer's one-read-per-slot path."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from lull.common.consumer import Consumer, ConsumerConfig, Entry, Outcome, Permanent, RetryLater
from lull.common.consumer.config import check_client
from lull.common.consumer.read import read_sets
from lull.common.env import ConfigError
from lull.common.redis_conn import connect
from lull.common.settings import CommonSettings
from lull.common.signing import sign
from lull.common.store.keys import Keys
from lull.common.store.legacy import LegacyKeys
from lull.common.store.streams import text
from lull.dev.embedded_redis import free_port
from lull.dev.fake_graph import FAKE_GRAPH
from lull.ingest.app import create_app
from lull.ingest.settings import IngestSettings
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.cluster.conftest import SHARDS, drain_echo_sender
from tests.ingest.conftest import SECRET, VERIFY_TOKEN
from tests.sender.conftest import TOKENS, sent_texts

PAGE = "p1"
MESSAGES_PER_USER = 3


def messenger_body(user: str, mid: str, text: str, t_ms: int) -> bytes:
    """One Messenger webhook POST holding one text message of user to PAGE."""
    item = {
        "sender": {"id": user},
        "recipient": {"id": PAGE},
        "timestamp": t_ms,
        "message": {"mid": mid, "text": text},
    }
    return orjson.dumps(
        {"object": "page", "entry": [{"id": PAGE, "time": t_ms, "messaging": [item]}]}
    )


def users_on_every_shard(keys: Keys, per_shard: int) -> list[str]:
    """per_shard user ids whose conversation lands on each shard."""
    found: dict[int, list[str]] = {shard: [] for shard in range(keys.shards)}
    candidate = 0
    while any(len(users) < per_shard for users in found.values()):
        user = f"u{candidate}"
        candidate += 1
        users = found[keys.shard_of(f"messenger:{PAGE}:{user}")]
        if len(users) < per_shard:
            users.append(user)
    return [user for users in found.values() for user in users]


def node_of(client: RedisCluster, key: str) -> str:
    """host:port of the master that holds key's slot."""
    node = client.get_node_from_key(key)
    assert node is not None
    return str(node.name)


def test_cluster_needs_a_tcp_url_of_database_0() -> None:
    env = {"LULL_REDIS_CLUSTER": "1"}
    assert CommonSettings.from_env({**env, "LULL_REDIS_URL": "redis://h:7000"}).redis_cluster
    assert not CommonSettings.from_env({}).redis_cluster
    for url in ("unix:///tmp/redis.sock", "redis://:secret@h:7000/2"):
        with pytest.raises(ConfigError, match="LULL_REDIS_URL") as raised:
            CommonSettings.from_env({**env, "LULL_REDIS_URL": url})
        assert "secret" not in str(raised.value)


async def test_unreachable_cluster_is_a_redis_failure_not_a_crash(namespace: str) -> None:
    env = {
        "LULL_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        "LULL_REDIS_CLUSTER": "1",
        "LULL_NAMESPACE": namespace,
        "LULL_INGEST_REDIS_TIMEOUT_MS": "500",
        "LULL_APP_SECRET": SECRET,
        "LULL_VERIFY_TOKEN": VERIFY_TOKEN,
    }
    body = messenger_body("u1", "m1", "hi", int(time.time() * 1000))
    async with TestClient(TestServer(create_app(IngestSettings.from_env(env)))) as ingest:
        assert (await ingest.get("/readyz")).status == 503
        headers = {"X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"}
        assert (await ingest.post("/webhook", data=body, headers=headers)).status == 503

    client = connect(env["LULL_REDIS_URL"], timeout_s=1, cluster=True)
    registry = CollectorRegistry()
    config = ConsumerConfig(
        streams=Keys(namespace, SHARDS).all_outbound(),
        group="g",
        dead_stream=Keys(namespace).dead(),
        error_backoff_ms=10,
    )
    consumer = Consumer(client, config, Recorder(), registry)
    running = asyncio.create_task(consumer.run_forever())
    deadline = time.monotonic() + 10
    while not registry.get_sample_value(
        "lull_consumer_redis_errors_total", {"group": "g", "op": "create group"}
    ):
        assert not running.done(), running.exception()
        assert time.monotonic() < deadline, "the consumer never reported the failure"
        await asyncio.sleep(0.01)  # the consumer's own backoff, bounded above
    consumer.request_stop()
    await asyncio.wait_for(running, timeout=5)  # stopped, did not raise
    await client.aclose()


async def test_client_times_out_every_call_and_reaches_every_master(
    cluster: RedisCluster,
) -> None:
    assert cluster.get_connection_kwargs()["socket_timeout"] == 5
    check_client(cluster, block_ms=100)  # the consumer accepts it
    assert await cluster.ping()
    assert len(cluster.get_primaries()) == 3


async def test_shards_are_spread_over_every_master(cluster: RedisCluster, namespace: str) -> None:
    keys = Keys(namespace, SHARDS)
    assert len({node_of(cluster, keys.outbound(shard)) for shard in range(SHARDS)}) == 3
    # The unsharded keys are single keys and may live anywhere.
    for shard in range(SHARDS):
        shard_keys = [
            keys.outbound(shard), keys.due(shard), *LegacyKeys.of(keys, shard).moved()[:2],
            keys.conversation_state_prefix(shard) + "messenger:p:u",
            keys.history_prefix(shard) + "messenger:p:u",
        ]  # fmt: skip
        assert len({key_slot(key.encode()) for key in shard_keys}) == 1


async def test_burst_through_ingest_processor_and_sender(
    cluster: RedisCluster,
    cluster_env: dict[str, str],
    namespace: str,
    graph_server: TestServer,
) -> None:
    keys = Keys(namespace, SHARDS)
    users = users_on_every_shard(keys, per_shard=2)
    ingest_env = {**cluster_env, "LULL_APP_SECRET": SECRET, "LULL_VERIFY_TOKEN": VERIFY_TOKEN}
    now_ms = int(time.time() * 1000)
    bodies = [
        messenger_body(user, f"{user}-m{n}", f"{user} says {n}", now_ms + n)
        for user in users
        for n in range(MESSAGES_PER_USER)
    ]
    async with TestClient(TestServer(create_app(IngestSettings.from_env(ingest_env)))) as ingest:
        assert (await ingest.get("/readyz")).status == 200
        posts = [
            ingest.post(
                "/webhook",
                data=body,
                headers={
                    "X-Hub-Signature-256": sign(SECRET, body),
                    "Content-Type": "application/json",
                },
            )
            for body in bodies
        ]
        assert [response.status for response in await asyncio.gather(*posts)] == [200] * len(bodies)
    assert await cluster.xlen(keys.inbound()) == len(bodies)

    # The posts above ran concurrently, so they may be stored in any order: a batch keeps its
    # messages in event-time order only while the clamp (LULL_MAX_LATENESS_MS, default half
    # the window) leaves their times apart, and this drain starts well after them.
    window_env = {
        "LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000", "LULL_MAX_LATENESS_MS": "600000",
    }  # fmt: skip
    processor = Processor(cluster, ProcessorSettings.from_env({**cluster_env, **window_env}))
    assert await processor.drain(timeout_s=20) == len(users)
    for shard in range(SHARDS):
        assert await cluster.xlen(keys.outbound(shard)) == 2  # two users per shard

    await drain_echo_sender(cluster, cluster_env, graph_server)

    expected = [
        (user, "\n".join(f"{user} says {n}" for n in range(MESSAGES_PER_USER))) for user in users
    ]
    assert sorted(sent_texts(graph_server.app[FAKE_GRAPH])) == sorted(expected)
    for shard in range(SHARDS):
        assert (await cluster.xpending(keys.outbound(shard), "sender"))["pending"] == 0
    assert (await cluster.xpending(keys.inbound(), "processor"))["pending"] == 0
    assert await cluster.xlen(keys.dead()) == 0


def start_service(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m module`, its output to log: a file, so it never blocks on a full pipe."""
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", f"lull.{module}"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


@pytest.mark.slow
async def test_processor_and_sender_services_run_on_the_cluster(
    cluster: RedisCluster,
    cluster_env: dict[str, str],
    namespace: str,
    graph_server: TestServer,
    tmp_path: Path,
) -> None:
    keys = Keys(namespace, SHARDS)
    users = users_on_every_shard(keys, per_shard=1)
    now_ms = int(time.time() * 1000)
    for user in users:
        for n in range(MESSAGES_PER_USER):
            body = messenger_body(user, f"{user}-m{n}", f"{user} says {n}", now_ms + n)
            await cluster.xadd(keys.inbound(), {"body": body, "received_at": now_ms})
    metrics_port = free_port()
    env = {
        **os.environ,
        **cluster_env,
        "LULL_WINDOW_MS": "30",
        "LULL_MAX_WAIT_MS": "1000",
        "LULL_PROCESSOR_METRICS_PORT": str(metrics_port),
        "LULL_HANDLER": "echo",
        "LULL_GRAPH_API_BASE": str(graph_server.make_url("")).rstrip("/"),
        "LULL_ACCESS_TOKENS": orjson.dumps(TOKENS).decode(),
        "LULL_SENDER_METRICS_PORT": "0",
    }
    logs = [tmp_path / f"{module}.log" for module in ("processor", "sender")]
    services = [start_service(log.stem, env, log) for log in logs]
    graph = graph_server.app[FAKE_GRAPH]
    try:
        deadline = time.monotonic() + 30
        while len(sent_texts(graph)) < len(users):
            for service in services:
                assert service.poll() is None, [log.read_text()[-2000:] for log in logs]
            assert time.monotonic() < deadline, f"sent only {sent_texts(graph)}"
            await asyncio.sleep(0.05)  # two child processes at work, bounded above
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"http://127.0.0.1:{metrics_port}/readyz") as ready,
        ):
            assert ready.status == 200  # PING through the cluster client
    finally:
        for service in services:
            service.send_signal(signal.SIGTERM)
        for service in services:
            service.wait(timeout=15)
    assert [service.returncode for service in services] == [0, 0], [
        log.read_text()[-2000:] for log in logs
    ]
    expected = [
        (user, "\n".join(f"{user} says {n}" for n in range(MESSAGES_PER_USER))) for user in users
    ]
    assert sorted(sent_texts(graph)) == sorted(expected)


class Recorder:
    """A handler that records what it is handed, dead-letters `poison` entries, and sets
    an event when an entry with field `last` arrives."""

    def __init__(self) -> None:
        self.handled: list[str] = []
        self.last_seen = asyncio.Event()

    async def __call__(self, stream: str, entries: list[Entry], /) -> list[Outcome]:
        self.handled += [entry.id for entry in entries]
        if any(b"last" in entry.fields for entry in entries):
            self.last_seen.set()
        return [Permanent("poison") if b"poison" in e.fields else None for e in entries]


async def blocked_reads(client: RedisCluster) -> int:
    """XREADGROUP calls blocked right now, over every master."""
    per_node: Any = await client.execute_command("CLIENT LIST", target_nodes=RedisCluster.PRIMARIES)
    rows = [row for listing in per_node.values() for row in listing]
    return sum(1 for row in rows if row.get("cmd") == "xreadgroup" and "b" in row["flags"])


async def test_consumer_reads_every_slot_and_does_not_wait_for_quiet_ones(
    cluster: RedisCluster, namespace: str
) -> None:
    keys = Keys(namespace, SHARDS)
    streams = keys.all_outbound()
    together = f"{keys.tag(0)}:other"  # same slot as shard 0's stream: read with it
    sets = read_sets(cluster, [*streams, together])
    expected_sets = [sorted([streams[0], together]), *([stream] for stream in streams[1:])]
    assert sorted(sorted(names) for names in sets) == sorted(expected_sets)

    block_ms = 1000
    config = ConsumerConfig(
        streams=streams, group="g", dead_stream=keys.dead(), consumer="me", block_ms=block_ms
    )
    handler = Recorder()
    consumer = Consumer(cluster, config, handler, CollectorRegistry())
    ids: list[str] = []
    for stream in streams:
        for fields in ({"n": "1"}, {"poison": "1"}):
            ids.append(text(await cluster.xadd(stream, fields)))  # type: ignore[arg-type]
    await consumer.run_until_idle()
    assert sorted(handler.handled) == sorted(ids)
    for stream in streams:
        assert (await cluster.xpending(stream, "g"))["pending"] == 0
    assert await cluster.xlen(keys.dead()) == len(streams)

    # Every slot's reader blocks; an entry on one slot is handled at once, not when the
    # other readers' blocks end.
    running = asyncio.create_task(consumer.run_forever())
    deadline = time.monotonic() + 10
    while await blocked_reads(cluster) < len(streams):
        assert time.monotonic() < deadline, "the readers never blocked"
        await asyncio.sleep(0.01)
    added = time.monotonic()
    await cluster.xadd(streams[1], {"last": "1"})
    await asyncio.wait_for(handler.last_seen.wait(), timeout=block_ms / 1000 / 2)
    assert time.monotonic() - added < block_ms / 1000 / 2
    consumer.request_stop()
    await asyncio.wait_for(running, timeout=block_ms / 1000 + 5)


class RetryOnce:
    """A handler that asks for a local retry the first time it sees an entry."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []
        """(stream, id, deliveries) of every entry handed over."""

    async def __call__(self, stream: str, entries: list[Entry], /) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for entry in entries:
            first = all((s, i) != (stream, entry.id) for s, i, _ in self.seen)
            self.seen.append((stream, entry.id, entry.times_delivered))
            outcomes.append(RetryLater(1, "once") if first else None)
        return outcomes


async def test_claim_retry_dead_letter_and_upkeep_across_slots(
    cluster: RedisCluster, namespace: str
) -> None:
    keys = Keys(namespace, SHARDS)
    streams = keys.all_outbound()
    config = ConsumerConfig(
        streams=streams,
        group="g",
        dead_stream=keys.dead(),
        consumer="survivor",
        claim_idle_ms=0,
        max_deliveries=2,
        consumer_expire_ms=0,
        error_backoff_ms=1,
    )
    survivor = Consumer(cluster, config, handler := RetryOnce(), CollectorRegistry())
    await survivor.run_until_idle()  # creates the groups
    ids = [text(await cluster.xadd(stream, {"n": "1"})) for stream in streams]
    poison = text(await cluster.xadd(streams[0], {"n": "2"}))
    # A replica that read everything and died; the poison entry it had claimed twice.
    for stream in streams:
        await cluster.xreadgroup("g", "crashed", {stream: ">"})
    await cluster.xclaim(streams[0], "g", "crashed", 0, [poison])

    await survivor.run_until_idle()  # claim pass, local retry, ack, dead letter

    # Claimed (the second delivery), held for a local retry, handled again, acked.
    expected = [(stream, i, 2) for stream, i in zip(streams, ids, strict=True)]
    assert sorted(handler.seen) == sorted(expected * 2)
    letters: Any = await cluster.xrange(keys.dead())
    [(_, letter)] = letters
    assert letter[b"_id"] == poison.encode()
    assert letter[b"_reason"].startswith(b"max_deliveries")
    await survivor.claim_pass()  # trims what the group acknowledged, expires "crashed"
    for stream in streams:
        assert await cluster.xlen(stream) == 0
        consumers = await cluster.xinfo_consumers(stream, "g")
        assert [c["name"] for c in consumers] == [b"survivor"]
