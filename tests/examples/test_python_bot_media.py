"""examples/python_bot with a picture and a voice note, through the real processor and
sender with media links and transcription on: the picture reaches the (fake) vision model as
an image part with the very bytes the user sent, the voice note as its transcript."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestServer

from examples.python_bot.bot import Config, create_app
from lull.dev.embedded_redis import free_port
from lull.dev.fake_media import FAKE_CDN, create_fake_cdn_app
from lull.dev.fake_transcribe import FAKE_TRANSCRIBER, create_fake_transcribe_app
from lull.dev.media_files import ogg_opus, png
from lull.sender.app import Sender
from lull.sender.settings import SenderSettings
from tests.examples.conftest import PAGE, SECRET, Stack
from tests.examples.test_python_bot import FakeModel, serve

SPOKEN = "what is in this picture"


@pytest.fixture
async def cdn() -> AsyncIterator[TestServer]:
    server = await serve(create_fake_cdn_app())
    yield server
    await server.close()


@pytest.fixture
async def transcriber() -> AsyncIterator[TestServer]:
    server = await serve(create_fake_transcribe_app())
    yield server
    await server.close()


async def _picture_and_voice_note(stack: Stack, cdn: TestServer, user: str) -> bytes:
    """The user sends a photo, then a voice note (Messenger attachments on the fake CDN)."""
    photo, voice = png(24, 24), ogg_opus(25)
    cdn.app[FAKE_CDN].put("photo.png", photo, "image/png")
    cdn.app[FAKE_CDN].put("voice.ogg", voice, "audio/ogg")
    now_ms = int(time.time() * 1000)
    for n, (kind, name) in enumerate((("image", "photo.png"), ("audio", "voice.ogg"))):
        url = str(cdn.make_url(f"/cdn/{name}"))
        item = {
            "sender": {"id": user}, "recipient": {"id": PAGE}, "timestamp": now_ms + n,
            "message": {"mid": f"m-{user}-{n}",
                        "attachments": [{"type": kind, "payload": {"url": url}}]},
        }  # fmt: skip
        body = {"object": "page", "entry": [{"id": PAGE, "time": now_ms, "messaging": [item]}]}
        fields = {"body": orjson.dumps(body), "received_at": now_ms, "sig": "ok"}
        await stack.redis.xadd(stack.keys.inbound(), fields)  # type: ignore[arg-type]
    return photo


async def _deliver_with_media(
    stack: Stack, handler: str, cdn: TestServer, transcriber: TestServer
) -> None:
    """A sender with media links and transcription on, its media server listening."""
    port = free_port()
    env = stack.sender_env(
        handler,
        LULL_MEDIA_SECRET="example-media-secret-0123456789",
        LULL_MEDIA_PORT=str(port),
        LULL_MEDIA_PUBLIC_URL=f"http://127.0.0.1:{port}",
        LULL_MEDIA_HOSTS=f"127.0.0.1:{cdn.port}",
        LULL_TRANSCRIBE_URL=str(transcriber.make_url("/v1/audio/transcriptions")),
    )
    sender = await Sender.create(stack.redis, SenderSettings.from_env(env))
    assert sender.media is not None
    app = sender.media.app()
    assert app is not None
    media_server = TestServer(app, port=port)
    await media_server.start_server()
    try:
        await sender.drain()
    finally:
        await media_server.close()
        await sender.close()


async def test_the_bot_shows_the_picture_to_the_model_and_answers_the_voice_note(
    stack: Stack, cdn: TestServer, transcriber: TestServer
) -> None:
    photo = await _picture_and_voice_note(stack, cdn, "u1")
    transcriber.app[FAKE_TRANSCRIBER].speak(cdn.app[FAKE_CDN].files["voice.ogg"].body, SPOKEN)
    model = FakeModel()
    model_server = await serve(model.app())
    config = Config(secret=SECRET, openai_base_url=str(model_server.make_url("/v1")))
    bot = await serve(create_app(config))
    try:
        assert await stack.close_windows() == 1
        await _deliver_with_media(stack, str(bot.make_url("/lull")), cdn, transcriber)
    finally:
        await bot.close()
        await model_server.close()
    [request] = model.requests
    text_part, image_part = request["messages"][-1]["content"]
    assert text_part == {"type": "text", "text": SPOKEN}
    head, _, data = image_part["image_url"]["url"].partition(",")
    assert head == "data:image/png;base64"
    assert base64.b64decode(data) == photo
    assert stack.replies_to("u1") == [{"text": f"model: {[text_part, image_part]}"}]


async def test_the_echo_bot_says_what_it_saw_and_heard(
    stack: Stack, cdn: TestServer, transcriber: TestServer
) -> None:
    photo = await _picture_and_voice_note(stack, cdn, "u2")
    transcriber.app[FAKE_TRANSCRIBER].speak(cdn.app[FAKE_CDN].files["voice.ogg"].body, SPOKEN)
    bot = await serve(create_app(Config(secret=SECRET)))
    try:
        assert await stack.close_windows() == 1
        await _deliver_with_media(stack, str(bot.make_url("/lull")), cdn, transcriber)
    finally:
        await bot.close()
    expected = f"{SPOKEN}\n[a picture: image/png, {len(photo)} bytes]"
    assert stack.replies_to("u2") == [{"text": expected}]
