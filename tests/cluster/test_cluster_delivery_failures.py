"""WhatsApp delivery failures on a real 3-master Redis Cluster: the sent-message keys live in
their message id's slot, the failure is recorded in its conversation's slot, and `lull
stats` reads every shard's list."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp.test_utils import TestServer
from redis.asyncio.cluster import RedisCluster

from lull.common.store.keys import Keys
from lull.dev.fake_graph import FAKE_GRAPH
from lull.ops.stats import collect
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.cluster.conftest import SHARDS, drain_echo_sender
from tests.conftest import FIXTURES

ACCOUNT = "wa1"  # the phone number id the sender tests have a token for


def phones_on_every_shard(keys: Keys) -> list[str]:
    """One WhatsApp phone number whose conversation lands on each shard."""
    found: dict[int, str] = {}
    candidate = 16315550000
    while len(found) < keys.shards:
        found.setdefault(keys.shard_of(f"whatsapp:{ACCOUNT}:{candidate}"), str(candidate))
        candidate += 1
    return list(found.values())


def body(kind: str, **fields: Any) -> bytes:
    """A WhatsApp fixture body with its first message or status item updated."""
    doc = orjson.loads((FIXTURES / "whatsapp" / f"{kind}.json").read_bytes())
    value = doc["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = ACCOUNT
    (value.get("messages") or value["statuses"])[0].update(fields)
    return orjson.dumps(doc)


async def ingest(cluster: RedisCluster, keys: Keys, raw: bytes) -> None:
    fields = {"body": raw, "received_at": int(time.time() * 1000)}
    await cluster.xadd(keys.inbound(), fields)  # type: ignore[arg-type]


async def test_failed_statuses_are_matched_across_slots(
    cluster: RedisCluster, cluster_env: dict[str, str], namespace: str, graph_server: TestServer
) -> None:
    keys = Keys(namespace, SHARDS)
    phones = phones_on_every_shard(keys)
    window_env = {"LULL_WINDOW_MS": "30", "LULL_MAX_WAIT_MS": "1000"}
    processor = Processor(cluster, ProcessorSettings.from_env({**cluster_env, **window_env}))
    # Written now: the fixture's 2025 time is past Meta's 24-hour window, not answered.
    written = str(int(time.time()))
    for phone in phones:
        fields = {"from": phone, "id": f"wamid.in-{phone}", "timestamp": written}
        await ingest(cluster, keys, body("text", **fields))
    assert await processor.drain(timeout_s=20) == len(phones)
    await drain_echo_sender(cluster, cluster_env, graph_server)
    sent = {s["payload"]["to"]: s["message_id"] for s in graph_server.app[FAKE_GRAPH].sent}
    assert set(sent) == set(phones)

    # Every reply fails, each status twice; and one message lull never sent fails too.
    for _ in range(2):
        for wamid in sent.values():
            await ingest(cluster, keys, body("statuses_failed_undeliverable", id=wamid))
        await ingest(cluster, keys, body("statuses_failed_undeliverable", id="wamid.other"))
    assert await processor.drain(timeout_s=20) == 0
    matched = {"platform": "whatsapp", "code": "131026", "matched": "yes"}
    unmatched = {**matched, "matched": "no"}
    failures = "lull_processor_delivery_failures_total"
    assert processor.registry.get_sample_value(failures, matched) == len(phones)
    assert processor.registry.get_sample_value(failures, unmatched) == 1
    for phone, wamid in sent.items():
        conversation = f"whatsapp:{ACCOUNT}:{phone}"
        last = orjson.loads(await cluster.lindex(keys.history(conversation), -1) or b"{}")
        assert (last["role"], last["mid"], last["code"]) == ("status", wamid, 131026)
    shown = (await collect(cluster, keys)).delivery_failures
    assert sorted(f.message_id for f in shown) == sorted([*sent.values(), "wamid.other"])
