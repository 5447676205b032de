"""Media figures: a 1 MB image through a lull media link against a direct download from the
fake Graph API, and the latency a voice note's transcription adds to a delivery.

`python -m tests.bench.bench_media` (one process: the fakes, the media server and the
sender run in it, on loopback; its own redis-server).

- Image: ROUNDS times, alternating, (a) a bot with Meta's token doing what Meta documents
  (`GET /{media-id}`, then the download URL), (b) a GET of a signed lull link (lull does the
  same two calls with the account's token and streams the bytes on). Both end with the
  whole body read and its sha256 checked.
- Voice note: ROUNDS batches of one WhatsApp voice note each are delivered by a sender with
  transcription (fake transcriber, answering at once) and by one without; the figure is the
  difference of the median delivery times (sender.drain of one batch, the bot an echo).
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from aiohttp.test_utils import TestServer

from lull.common.redis_conn import RedisClient, connect
from lull.dev.embedded_redis import EmbeddedRedis, free_port
from lull.dev.fake_graph import create_fake_graph_app
from lull.dev.fake_media import FAKE_MEDIA
from lull.dev.fake_transcribe import FAKE_TRANSCRIBER, create_fake_transcribe_app
from lull.dev.media_files import ogg_opus, png
from lull.sender.app import Sender
from lull.sender.media import Signer, Target
from lull.sender.settings import SenderSettings

ROUNDS = 30
ACCOUNT = "wa1"
TOKENS = {ACCOUNT: "wa-token"}
SECRET = "bench-media-secret-0123456789"


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


async def _direct(session: aiohttp.ClientSession, graph_url: str, expected: str) -> float:
    started = time.perf_counter()
    auth = {"Authorization": f"Bearer {TOKENS[ACCOUNT]}"}
    async with session.get(f"{graph_url}/v23.0/img", headers=auth) as response:
        url = (await response.json())["url"]
    async with session.get(url, headers=auth) as response:
        body = await response.read()
    elapsed = time.perf_counter() - started
    assert hashlib.sha256(body).hexdigest() == expected
    return elapsed


async def _linked(session: aiohttp.ClientSession, link: str, expected: str) -> float:
    started = time.perf_counter()
    async with session.get(link) as response:
        body = await response.read()
    elapsed = time.perf_counter() - started
    assert response.status == 200 and hashlib.sha256(body).hexdigest() == expected
    return elapsed


def _voice_batch(user: str, seq: int) -> tuple[str, dict[bytes | str, bytes]]:
    conversation = f"whatsapp:{ACCOUNT}:{user}"
    t = int(time.time() * 1000)
    mime = "audio/ogg; codecs=opus"
    audio = {"id": "voice", "mime_type": mime, "voice": True}
    raw = {"from": user, "id": f"wamid.{user}", "timestamp": str(t // 1000), "type": "audio",
           "audio": audio}  # fmt: skip
    attachment = {"type": "audio", "id": "voice", "mime_type": mime}
    message = {"mid": f"wamid.{user}", "event_time": t, "received_at": t, "kind": "attachment",
               "text": "", "attachments": [attachment], "raw": raw}  # fmt: skip
    batch = {"batch_id": f"{conversation}:{seq}", "seq": seq, "platform": "whatsapp",
             "account_id": ACCOUNT, "user_id": user, "conversation": conversation,
             "messages": [message], "text": "", "first_event_time": t, "last_event_time": t,
             "opened_at": t, "closed_at": t, "close_reason": "gap", "version": 1}  # fmt: skip
    return conversation, {"batch": orjson.dumps(batch)}


async def _deliveries(
    client: RedisClient, env: dict[str, str], namespace: str, label: str
) -> list[float]:
    sender = await Sender.create(
        client, SenderSettings.from_env({**env, "LULL_NAMESPACE": namespace})
    )
    keys = sender.keys
    samples = []
    try:
        for n in range(ROUNDS):
            conversation, fields = _voice_batch(f"{label}{n}", 1)
            state = keys.conversation_state(conversation)
            await client.hset(state, mapping={"delivered": 0, "seq": 1})
            await client.xadd(keys.outbound(0), fields)  # type: ignore[arg-type]
            started = time.perf_counter()
            await sender.drain()
            samples.append(time.perf_counter() - started)
    finally:
        await sender.close()
    return samples


async def main() -> None:
    """Run both measurements and print the figures."""
    image = png(600, 580, noise=True)
    expected = hashlib.sha256(image).hexdigest()
    graph = TestServer(create_fake_graph_app(TOKENS))
    transcribe = TestServer(create_fake_transcribe_app())
    await graph.start_server()
    await transcribe.start_server()
    graph.app[FAKE_MEDIA].put("img", image, "image/png", ACCOUNT)
    voice = ogg_opus(150)
    graph.app[FAKE_MEDIA].put("voice", voice, "audio/ogg; codecs=opus", ACCOUNT)
    transcribe.app[FAKE_TRANSCRIBER].speak(voice, "a three second voice note")
    graph_url = str(graph.make_url("")).rstrip("/")
    media_port = free_port()
    with tempfile.TemporaryDirectory(prefix="lull-bench-media") as tmp:
        store = EmbeddedRedis(Path(tmp) / "redis", appendonly=False).start()
        client = connect(store.url, timeout_s=5.0)
        env = {
            "LULL_REDIS_URL": store.url, "LULL_HANDLER": "none",
            "LULL_GRAPH_API_BASE": graph_url, "LULL_ACCESS_TOKENS": orjson.dumps(TOKENS).decode(),
            "LULL_RATE_GLOBAL": "off", "LULL_RATE_PER_USER": "off",
            "LULL_SEND_RATE_PER_USER": "off", "LULL_SENDER_METRICS_PORT": "0",
            "LULL_READ_RECEIPTS": "off",
        }  # fmt: skip
        media_env = {**env, "LULL_MEDIA_SECRET": SECRET, "LULL_MEDIA_PORT": str(media_port),
                     "LULL_MEDIA_PUBLIC_URL": f"http://127.0.0.1:{media_port}"}  # fmt: skip
        try:
            sender = await Sender.create(client, SenderSettings.from_env(media_env))
            assert sender.media is not None and sender.media.app() is not None
            media_server = TestServer(sender.media.app(), port=media_port)  # type: ignore[arg-type]
            await media_server.start_server()
            link = Signer(SECRET).link(f"http://127.0.0.1:{media_port}",
                                       Target("whatsapp", ACCOUNT, media_id="img"),
                                       int(time.time()) + 3600)  # fmt: skip
            direct: list[float] = []
            linked: list[float] = []
            async with aiohttp.ClientSession() as session:
                await _direct(session, graph_url, expected)  # warm both paths
                await _linked(session, link, expected)
                for _ in range(ROUNDS):
                    direct.append(await _direct(session, graph_url, expected))
                    linked.append(await _linked(session, link, expected))
            await media_server.close()
            await sender.close()
            transcribed_env = {**env, "LULL_TRANSCRIBE_URL": str(
                transcribe.make_url("/v1/audio/transcriptions"))}  # fmt: skip
            plain = await _deliveries(client, env, "benchplain", "p")
            heard = await _deliveries(client, transcribed_env, "benchvoice", "v")
        finally:
            await client.aclose()
            store.stop()
    await graph.close()
    await transcribe.close()
    size_kb = len(image) / 1024
    print(f"media bench: {ROUNDS} rounds each, one process on loopback")
    print(f"  {size_kb:.0f} KiB PNG, direct from the fake (2 calls, token): {_ms(direct)}")
    print(f"  {size_kb:.0f} KiB PNG, through the lull media link:           {_ms(linked)}")
    added = statistics.median(heard) - statistics.median(plain)
    print(f"  voice note ({len(voice)} B) delivery without transcription: {_ms(plain)}")
    print(f"  voice note delivery with transcription (fake, instant):   {_ms(heard)}")
    print(f"  transcription adds (median): {added * 1000:.1f} ms")
    calls = len(transcribe.app[FAKE_TRANSCRIBER].calls)
    print(f"  transcription calls: {calls} for {ROUNDS} voice notes")


if __name__ == "__main__":
    asyncio.run(main())
