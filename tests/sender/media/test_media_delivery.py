"""Media through the real processor and the real sender: the bot gets a batch whose media
links return the very bytes Meta holds, and voice notes as text."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from prometheus_client import generate_latest

from lull.dev.fake_media import FakeCdn, FakeMedia
from lull.dev.fake_transcribe import FakeTranscriber
from lull.dev.media_files import ogg_opus, png
from lull.ops.dead import DeadLetters
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from lull.sender.app import Sender
from tests.sender.conftest import MakeSender
from tests.sender.fake_bot import FakeBot
from tests.sender.media.webhooks import (
    WA_ACCOUNT,
    ingest,
    messenger_attachment,
    whatsapp_media,
)

BOT_SECRET = "bot-secret"
SPOKEN = "where is my order number 4 2"


@pytest.fixture
async def processor(redis: aioredis.Redis, base_env: dict[str, str]) -> Processor:
    """A real processor with a short window."""
    env = {**base_env, "LULL_WINDOW_MS": "20", "LULL_MAX_WAIT_MS": "1000"}
    return Processor(redis, ProcessorSettings.from_env(env))


@pytest.fixture
async def bot() -> AsyncIterator[FakeBot]:
    """The fake bot on loopback."""
    async with FakeBot(BOT_SECRET) as fake:
        yield fake


@pytest.fixture
def delivery_env(
    media_env: dict[str, str], bot: FakeBot, transcribe_server: TestServer
) -> dict[str, str]:
    """Media links and transcription on, the fake bot as the handler."""
    return {
        **media_env,
        "LULL_HANDLER": bot.url,
        "LULL_HANDLER_SECRET": BOT_SECRET,
        "LULL_TRANSCRIBE_URL": str(transcribe_server.make_url("/v1/audio/transcriptions")),
        "LULL_TRANSCRIBE_API_KEY": "sk-test",
    }


@dataclass
class Rig:
    """A real processor and what a media sender needs around it."""

    redis: aioredis.Redis
    make_sender: MakeSender
    processor: Processor
    bot: FakeBot
    env: dict[str, str]
    """The sender's media and transcription variables, the bot's URL."""
    store: FakeMedia
    """WhatsApp's media on the fake Graph API."""
    transcriber: FakeTranscriber

    async def through(self, *bodies: bytes, **overrides: str) -> Sender:
        """Ingest bodies, let the processor close the windows, deliver with a new sender."""
        sender = await self.make_sender(**{**self.env, **overrides})
        for body in bodies:
            await ingest(self.redis, self.processor.keys, body)
        await self.processor.drain()
        await sender.drain()
        return sender


@pytest.fixture
def rig(
    *,
    redis: aioredis.Redis,
    make_sender: MakeSender,
    processor: Processor,
    bot: FakeBot,
    delivery_env: dict[str, str],
    whatsapp_media_store: FakeMedia,
    transcriber: FakeTranscriber,
) -> Rig:
    """Everything a media delivery test drives."""
    return Rig(redis, make_sender, processor, bot, delivery_env, whatsapp_media_store,
               transcriber)  # fmt: skip


async def _serve(sender: Sender, port: int) -> TestServer:
    assert sender.media is not None
    app = sender.media.app()
    assert app is not None
    server = TestServer(app, port=port)
    await server.start_server()
    return server


async def _fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, url
        return await response.read()


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _attachments(batch: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for m in batch["messages"] for a in m["attachments"]]


async def test_one_burst_reaches_the_bot_with_working_links_and_the_transcript(
    rig: Rig, media_port: int, cdn: FakeCdn
) -> None:
    image, voice, photo = png(40, 30), ogg_opus(), png(20, 20, noise=True)
    image_sha = rig.store.put("img-1", image, "image/png", WA_ACCOUNT)
    voice_sha = rig.store.put("voice-1", voice, "audio/ogg; codecs=opus", WA_ACCOUNT)
    rig.transcriber.speak(voice, SPOKEN)
    cdn.put("photo.png", photo, "image/png")
    cdn_port = rig.env["LULL_MEDIA_HOSTS"].rsplit(":", 1)[1]
    burst = whatsapp_media([
        ("wamid.img", "image",
         {"mime_type": "image/png", "sha256": image_sha, "id": "img-1", "caption": "look"}),
        ("wamid.voice", "audio",
         {"mime_type": "audio/ogg; codecs=opus", "sha256": voice_sha, "id": "voice-1",
          "voice": True}),
    ])  # fmt: skip
    url = f"http://127.0.0.1:{cdn_port}/cdn/photo.png"
    sender = await rig.through(burst, messenger_attachment("m_photo", "image", url))
    server = await _serve(sender, media_port)
    try:
        batches = {b["platform"]: b for b in rig.bot.received}
        assert sorted(batches) == ["messenger", "whatsapp"]
        whatsapp = batches["whatsapp"]
        assert [m["mid"] for m in whatsapp["messages"]] == ["wamid.img", "wamid.voice"]
        img, note = _attachments(whatsapp)
        assert img["media"]["mime_type"] == "image/png"
        assert img["media"]["sha256"] == image_sha
        assert note["media"]["voice"] is True
        assert img["media"]["expires_at"] > time.time() * 1000
        assert _sha(await _fetch(img["media"]["url"])) == _sha(image)
        assert _sha(await _fetch(note["media"]["url"])) == _sha(voice)
        [messenger_photo] = _attachments(batches["messenger"])
        assert _sha(await _fetch(messenger_photo["media"]["url"])) == _sha(photo)
        assert whatsapp["messages"][1]["transcript"] == SPOKEN
        assert whatsapp["text"] == "look\n" + SPOKEN
    finally:
        await server.close()
    # The history the bot will see next holds the transcript as the user's words.
    history = await rig.redis.lrange(sender.keys.history(whatsapp["conversation"]), 0, -1)
    user_texts = [orjson.loads(h)["text"] for h in history if orjson.loads(h)["role"] == "user"]
    assert user_texts == ["look", SPOKEN]
    # Transcribed once, with the configured model and key, the audio named as OGG.
    [call] = rig.transcriber.calls
    assert (call.model, call.filename, call.authorization) == (
        "whisper-1", "audio.ogg", "Bearer sk-test",
    )  # fmt: skip
    # No media bytes in Redis: only the transcript is kept.
    stored = await rig.redis.hgetall(sender.keys.transcripts(whatsapp["conversation"]))
    assert stored == {b"wamid.voice": orjson.dumps({"text": SPOKEN})}
    text = generate_latest(sender.registry).decode()
    assert 'lull_transcription_seconds_count{outcome="ok",platform="whatsapp"} 1.0' in text


def _voice_note(media_id: str = "voice-1") -> bytes:
    return whatsapp_media(
        [("wamid.v", "audio", {"mime_type": "audio/ogg; codecs=opus", "id": media_id,
                               "voice": True})]
    )  # fmt: skip


async def test_a_retried_batch_is_not_transcribed_again(rig: Rig) -> None:
    voice = ogg_opus(10)
    rig.store.put("voice-1", voice, "audio/ogg; codecs=opus", WA_ACCOUNT)
    rig.transcriber.speak(voice, SPOKEN)
    rig.bot.script(statuses=(503, 503))
    await rig.through(_voice_note())
    assert [b["text"] for b in rig.bot.received] == [SPOKEN] * 3
    assert len(rig.transcriber.calls) == 1


async def test_a_replayed_dead_letter_keeps_its_transcript(rig: Rig) -> None:
    voice = ogg_opus(10)
    rig.store.put("voice-1", voice, "audio/ogg; codecs=opus", WA_ACCOUNT)
    rig.transcriber.speak(voice, SPOKEN)
    rig.bot.script(statuses=(400,))  # the bot refuses it: dead letter
    sender = await rig.through(_voice_note())
    letters = DeadLetters(rig.redis, sender.keys)
    [letter] = await letters.first(10)
    assert len((await letters.replay([letter])).done) == 1
    await sender.drain()
    assert [b["text"] for b in rig.bot.received] == [SPOKEN, SPOKEN]
    assert len(rig.transcriber.calls) == 1


async def test_a_failed_transcription_never_blocks_the_batch(rig: Rig) -> None:
    rig.store.put("voice-1", ogg_opus(5), "audio/ogg; codecs=opus", WA_ACCOUNT)
    rig.transcriber.statuses.append(500)
    await rig.through(_voice_note())
    [batch] = rig.bot.received
    [message] = batch["messages"]
    assert "transcript" not in message
    assert message["transcript_error"] == "transcription endpoint answered 500"
    assert batch["text"] == ""


async def test_a_voice_note_meta_no_longer_has_is_said_so(rig: Rig) -> None:
    await rig.through(_voice_note("gone"))
    [batch] = rig.bot.received
    assert batch["messages"][0]["transcript_error"].startswith("audio not fetched")
    assert rig.transcriber.calls == []


async def test_a_slow_transcription_is_given_up_in_time(rig: Rig) -> None:
    rig.store.put("voice-1", ogg_opus(5), "audio/ogg; codecs=opus", WA_ACCOUNT)
    rig.transcriber.latency_ms = 3000
    started = time.monotonic()
    await rig.through(_voice_note(), LULL_TRANSCRIBE_TIMEOUT_MS="200")
    assert time.monotonic() - started < 2
    [batch] = rig.bot.received
    assert "took over 0.2 s" in batch["messages"][0]["transcript_error"]


async def test_without_media_settings_the_batch_is_as_before(rig: Rig) -> None:
    plain = {"LULL_HANDLER": rig.bot.url, "LULL_HANDLER_SECRET": BOT_SECRET}
    sender = await rig.make_sender(**plain)
    assert sender.media is None
    body = whatsapp_media([("wamid.i", "image", {"mime_type": "image/png", "id": "img-1"})])
    await ingest(rig.redis, rig.processor.keys, body)
    await rig.processor.drain()
    await sender.drain()
    [batch] = rig.bot.received
    assert _attachments(batch) == [{"type": "image", "id": "img-1", "mime_type": "image/png"}]
    assert rig.store.resolves == []


async def test_a_webhook_url_off_the_allowlist_gets_no_link(
    rig: Rig, elsewhere: FakeCdn, elsewhere_server_port: int
) -> None:
    url = f"http://127.0.0.1:{elsewhere_server_port}/cdn/x.png"
    elsewhere.put("x.png", png(), "image/png")
    body = messenger_attachment("m_x", "image", url)
    await rig.through(body, LULL_MEDIA_INLINE_MAX_BYTES="100000")
    [batch] = rig.bot.received
    [attachment] = _attachments(batch)
    assert attachment["media"] == {"error": "host not on LULL_MEDIA_HOSTS"}
    assert elsewhere.requests == []


async def test_small_media_is_inline_and_larger_media_keeps_its_link(rig: Rig) -> None:
    small, large = png(8, 8), png(64, 64, noise=True)
    rig.store.put("small", small, "image/png", WA_ACCOUNT)
    rig.store.put("large", large, "image/png", WA_ACCOUNT)
    body = whatsapp_media([
        ("wamid.s", "image", {"mime_type": "image/png", "id": "small"}),
        ("wamid.l", "image", {"mime_type": "image/png", "id": "large"}),
        ("wamid.g", "image", {"mime_type": "image/png", "id": "gone"}),
    ])  # fmt: skip
    limit = str(len(small) + 100)
    await rig.through(body, LULL_MEDIA_INLINE_MAX_BYTES=limit)
    [batch] = rig.bot.received
    inline, linked, gone = (a["media"] for a in _attachments(batch))
    assert base64.b64decode(inline["data"]) == small
    assert inline["size"] == len(small)
    assert "data" not in linked
    assert linked["error"] == "larger than LULL_MEDIA_INLINE_MAX_BYTES"
    assert linked["url"].startswith(rig.env["LULL_MEDIA_PUBLIC_URL"] + "/media/wa/")
    assert gone["error"].startswith("not fetched") and "url" in gone
    # Fetched at delivery only: no media bytes in Redis, raw or base64.
    stored = await _every_value(rig.redis)
    assert stored
    assert not [v for v in stored if small in v or base64.b64encode(small) in v]
    assert rig.store.downloads.count("large") == 0  # Meta's file_size said it would not fit


async def _every_value(redis: aioredis.Redis) -> list[bytes]:
    """Every value held in the test's Redis (its own server): strings, hashes, lists, sets,
    sorted sets and streams."""
    values: list[Any] = []
    async for key in redis.scan_iter(match="*"):
        kind = await redis.type(key)
        found: Any = []
        if kind == b"string":
            found = [await redis.get(key)]
        elif kind == b"hash":
            found = await redis.hvals(key)
        elif kind == b"list":
            found = await redis.lrange(key, 0, -1)
        elif kind == b"set":
            found = await redis.smembers(key)
        elif kind == b"zset":
            found = await redis.zrange(key, 0, -1)
        elif kind == b"stream":
            entries: Any = await redis.xrange(key)
            found = [v for _id, fields in entries for v in fields.values()]
        values += found
    return [bytes(v) for v in values if v is not None]


async def test_a_slow_inline_fetch_leaves_the_link_in_time(rig: Rig, cdn: FakeCdn) -> None:
    cdn.put("slow.png", png(), "image/png")
    cdn.latency_ms = 3000
    url = f"http://127.0.0.1:{rig.env['LULL_MEDIA_HOSTS'].rsplit(':', 1)[1]}/cdn/slow.png"
    started = time.monotonic()
    await rig.through(
        messenger_attachment("m_slow", "image", url),
        LULL_MEDIA_INLINE_MAX_BYTES="100000",
        LULL_MEDIA_TIMEOUT_MS="200",
    )
    assert time.monotonic() - started < 2
    [batch] = rig.bot.received
    [attachment] = _attachments(batch)
    assert attachment["media"]["error"].startswith("not fetched")
    assert "url" in attachment["media"] and "data" not in attachment["media"]
