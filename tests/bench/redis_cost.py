"""`python -m tests.bench.redis_cost [USERS]`: the Redis cost of one message, stage by stage.

docs/scaling.md sizes Redis masters from it. A redis-server of our own (no AOF) takes USERS
conversations of MESSAGES messages each, one message a webhook body, through an in-process
ingest app, one processor (30 ms windows) and one `echo` sender sending to the fake Graph
API; then as many WhatsApp status bodies (no message: what Meta sends about each reply)
through ingest and the processor (`statuses`, `(read)`). Before and after each stage it
reads the server's own CPU time (INFO cpu: user + sys) and its command count (INFO stats,
commands inside Lua scripts included). Each stage runs alone, so what Redis spent in it
is that stage's. Run it with LULL_INBOUND_SHARDS=3 in the environment to split the inbound
stream (one Redis holds every part then: the cost per message, not the spread).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp.test_utils import TestClient, TestServer

from lull.common.log import configure
from lull.common.redis_conn import RedisClient, connect
from lull.common.signing import sign
from lull.dev.embedded_redis import EmbeddedRedis
from lull.dev.fake_graph import create_fake_graph_app
from lull.ingest.app import create_app
from lull.ingest.settings import IngestSettings
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from lull.sender.app import Sender
from lull.sender.settings import SenderSettings

MESSAGES = 3
"""Messages per conversation, one window: one batch, one reply."""
POSTS_IN_FLIGHT = 64
PAGE = "p1"
TOKENS = {PAGE: "page-token"}
SECRET = "bench-secret"


async def _redis_used(client: RedisClient) -> tuple[float, int]:
    """(CPU seconds the server used, commands it processed) so far."""
    cpu = await client.info("cpu")
    stats = await client.info("stats")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), int(
        stats["total_commands_processed"]
    )


async def _stage(
    client: RedisClient, name: str, per: int, run: Callable[[], Awaitable[object]]
) -> None:
    before_cpu, before_commands = await _redis_used(client)
    started = time.perf_counter()
    await run()
    wall_s = time.perf_counter() - started
    after_cpu, after_commands = await _redis_used(client)
    cpu_us = (after_cpu - before_cpu) * 1e6 / per
    commands = (after_commands - before_commands - 2) / per  # less the two INFOs
    print(f"{name:<10} Redis CPU {cpu_us:6.1f} µs and {commands:5.2f} commands a message "
          f"({per:,} messages, {wall_s:.1f} s)")  # fmt: skip


def _body(user: str, n: int, t_ms: int) -> bytes:
    item = {
        "sender": {"id": user},
        "recipient": {"id": PAGE},
        "timestamp": t_ms + n,
        "message": {"mid": f"{user}-m{n}", "text": f"{user} says {n}"},
    }
    return orjson.dumps(
        {"object": "page", "entry": [{"id": PAGE, "time": t_ms, "messaging": [item]}]}
    )


async def _measure(url: str, users: int) -> None:
    base = {
        "LULL_REDIS_URL": url,
        "LULL_NAMESPACE": "cost",
        "LULL_LOG_LEVEL": "warning",
        "LULL_LOG_FORMAT": "json",
    }
    if "LULL_INBOUND_SHARDS" in os.environ:
        base["LULL_INBOUND_SHARDS"] = os.environ["LULL_INBOUND_SHARDS"]
    client = connect(url, timeout_s=10)
    total = users * MESSAGES
    now_ms = int(time.time() * 1000)
    bodies = [_body(f"u{u}", n, now_ms) for n in range(MESSAGES) for u in range(users)]
    ingest_env = {**base, "LULL_APP_SECRET": SECRET, "LULL_VERIFY_TOKEN": "v"}

    async def ingest() -> None:
        async with TestClient(TestServer(create_app(IngestSettings.from_env(ingest_env)))) as app:
            for start in range(0, total, POSTS_IN_FLIGHT):
                posts = [
                    app.post("/webhook", data=b, headers={"X-Hub-Signature-256": sign(SECRET, b)})
                    for b in bodies[start : start + POSTS_IN_FLIGHT]
                ]
                statuses = {r.status for r in await asyncio.gather(*posts)}
                assert statuses == {200}, statuses

    window = {
        "LULL_WINDOW_MS": "30",
        "LULL_MAX_WAIT_MS": "1000",
        "LULL_PROCESSOR_METRICS_PORT": "0",
    }
    processor = Processor(client, ProcessorSettings.from_env({**base, **window}))
    graph = TestServer(create_fake_graph_app(TOKENS))
    await graph.start_server()
    sender_env = {
        **base,
        "LULL_HANDLER": "echo",
        "LULL_GRAPH_API_BASE": str(graph.make_url("")).rstrip("/"),
        "LULL_ACCESS_TOKENS": orjson.dumps(TOKENS).decode(),
        "LULL_SENDER_METRICS_PORT": "0",
        "LULL_RATE_GLOBAL": "100000/1s",
    }
    sender = await Sender.create(client, SenderSettings.from_env(sender_env))
    try:
        print(f"{users:,} conversations x {MESSAGES} messages (one a body), 1 batch and 1 reply "
              f"each; LULL_INBOUND_SHARDS={base.get('LULL_INBOUND_SHARDS', '1')}")  # fmt: skip
        await _stage(client, "ingest", total, ingest)
        await _stage(client, "processor", total, lambda: processor.drain(timeout_s=120))
        await _stage(client, "sender", total, sender.drain)
        # WhatsApp reports each reply sent, delivered and read: three bodies of no message.
        status = (
            Path(__file__).parents[1] / "fixtures/whatsapp/statuses_delivered.json"
        ).read_bytes()
        bodies[:] = [status] * total
        await _stage(client, "statuses", total, ingest)
        await _stage(client, "(read)", total, lambda: processor.drain(timeout_s=120))
    finally:
        await sender.close()
        await graph.close()
        await client.aclose()


def main(argv: list[str]) -> int:
    """Measure with a redis-server of our own; print one line per stage."""
    users = int(argv[0]) if argv else 2000
    configure("console", "warning", "bench")
    with tempfile.TemporaryDirectory(prefix="lull-redis-cost-") as tmp:
        store = EmbeddedRedis(Path(tmp) / "redis", appendonly=False)
        store.start()
        try:
            asyncio.run(_measure(store.url, users))
        finally:
            store.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
