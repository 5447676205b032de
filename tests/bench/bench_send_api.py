"""The send API's accepted messages/s against the sender's replies/s, in one run.

    python -m tests.bench.bench_send_api [--posts 2000] [--conversations 200]

A Redis of its own (redis-server on a free port, no AOF), the admin app with the send API
on a real loopback TCP site, an aiohttp client POSTing with bounded concurrency (each POST
its own Idempotency-Key), then one sender replica (rates off) delivering every accepted
message to the fake Graph API on loopback. Client, API and sender share one event loop and
the machine's cores: the figures are this machine's, for comparison within the run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from lull.common.log import configure
from lull.common.redis_conn import connect
from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseSettings
from lull.dev.embedded_redis import EmbeddedRedis, free_port
from lull.dev.fake_graph import FAKE_GRAPH, create_fake_graph_app
from lull.sender.app import Sender
from lull.sender.settings import SenderSettings
from tests.ingest.send_api_app import send_api_app

TOKEN = "fedcba9876543210fedcba9876543210"
ACCOUNT = "106000000000001"
CONCURRENCY = 32
PAUSE = PauseSettings(quiet_ms=60_000, cap_ms=3_600_000)


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def run(posts: int, conversations: int, redis_url: str) -> dict[str, float]:
    """Post, then deliver; the two rates."""
    client = connect(redis_url, timeout_s=5)
    keys = Keys("bench")
    admin = send_api_app(client, keys, {ACCOUNT}, token=TOKEN, pause=PAUSE)
    graph_app = create_fake_graph_app({ACCOUNT: "page-token"})
    api_port, graph_port = free_port(), free_port()
    runners = [await _serve(admin, api_port), await _serve(graph_app, graph_port)]
    try:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(posts):
            queue.put_nowait(n)
        async with aiohttp.ClientSession(headers=headers) as session:

            async def poster() -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    conversation = f"messenger:{ACCOUNT}:u{n % conversations}"
                    body = orjson.dumps({"replies": [{"text": f"message {n}"}]})
                    async with session.post(
                        f"http://127.0.0.1:{api_port}/v1/conversations/{conversation}/messages",
                        data=body,
                        headers={"Idempotency-Key": f"k{n}"},
                    ) as response:
                        assert response.status == 202, await response.text()

            started = time.perf_counter()
            await asyncio.gather(*(poster() for _ in range(CONCURRENCY)))
            api_s = time.perf_counter() - started
        env = {
            "LULL_REDIS_URL": redis_url, "LULL_NAMESPACE": "bench", "LULL_HANDLER": "echo",
            "LULL_GRAPH_API_BASE": f"http://127.0.0.1:{graph_port}",
            "LULL_ACCESS_TOKENS": orjson.dumps({ACCOUNT: "page-token"}).decode(),
            "LULL_RATE_GLOBAL": "off", "LULL_RATE_PER_USER": "off",
            "LULL_SEND_RATE_PER_USER": "off", "LULL_SENDER_METRICS_PORT": "0",
            "LULL_READ_RECEIPTS": "off", "LULL_TYPING": "0",
        }  # fmt: skip
        sender = await Sender.create(client, SenderSettings.from_env(env))
        started = time.perf_counter()
        await sender.drain()
        sender_s = time.perf_counter() - started
        await sender.close()
        sent = len(graph_app[FAKE_GRAPH].sent)
        assert sent == posts, f"{sent} sent of {posts}"
    finally:
        for runner in runners:
            await runner.cleanup()
        await client.aclose()
    return {"accepted_per_s": posts / api_s, "replies_per_s": posts / sender_s}


def main() -> None:
    """Run once and print the two rates."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--conversations", type=int, default=200)
    args = parser.parse_args()
    configure("json", "warning", "bench")
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp), appendonly=False).start()
        try:
            figures = asyncio.run(run(args.posts, args.conversations, redis.url))
        finally:
            redis.stop()
    print(
        f"{args.posts} POSTs over {args.conversations} conversations: "
        f"send API accepted {figures['accepted_per_s']:.0f} messages/s; "
        f"the sender sent {figures['replies_per_s']:.0f} replies/s"
    )


if __name__ == "__main__":
    main()
