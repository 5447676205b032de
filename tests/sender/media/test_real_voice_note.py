"""A voice note spoken by espeak-ng and encoded to OGG/Opus by opusenc, as WhatsApp sends
them, transcribed by a real offline recognizer (pocketsphinx behind dev/speech_server.py):
no fake between the audio and the words. The transcript in the batch holds what was said.

`make speech` installs espeak-ng and opus-tools (Debian, as root) and runs this with
LULL_TEST_REQUIRE_SPEECH=1, so a missing tool fails there; elsewhere it skips without them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from tests.sender.conftest import MakeSender
from tests.sender.fake_bot import FakeBot
from tests.sender.media.webhooks import WA_ACCOUNT, ingest, whatsapp_media

SAID = "where is my order"
TOOLS = ("espeak-ng", "opusenc", "opusdec")
REQUIRE_ENV = "LULL_TEST_REQUIRE_SPEECH"


def _missing() -> list[str]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    try:
        import pocketsphinx  # noqa: F401, PLC0415
    except ImportError:
        missing.append("pocketsphinx")
    return missing


@pytest.fixture(autouse=True)
def _tools() -> None:
    missing = _missing()
    if missing and os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{', '.join(missing)} missing and {REQUIRE_ENV} is set")
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make speech installs them)")


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)
    _out, err = await process.communicate()
    assert process.returncode == 0, err.decode()


async def speak(text: str, directory: Path) -> bytes:
    """text spoken by espeak-ng, encoded to OGG/Opus by opusenc."""
    wav, ogg = directory / "said.wav", directory / "said.ogg"
    await _run("espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav), text)
    await _run("opusenc", "--quiet", str(wav), str(ogg))
    return ogg.read_bytes()


@pytest.fixture
async def speech_server() -> AsyncIterator[TestServer]:
    from lull.dev.speech_server import create_speech_app  # noqa: PLC0415  (after the skip)

    server = TestServer(create_speech_app())
    await server.start_server()
    yield server
    await server.close()


async def test_a_spoken_voice_note_reaches_the_bot_as_its_words(
    *,
    redis: aioredis.Redis,
    base_env: dict[str, str],
    make_sender: MakeSender,
    speech_server: TestServer,
    graph_server: TestServer,
    tmp_path: Path,
) -> None:
    from lull.dev.fake_media import FAKE_MEDIA  # noqa: PLC0415

    voice = await speak(SAID, tmp_path)
    assert voice.startswith(b"OggS") and b"OpusHead" in voice[:64]
    graph_server.app[FAKE_MEDIA].put("spoken", voice, "audio/ogg; codecs=opus", WA_ACCOUNT)
    env = {**base_env, "LULL_WINDOW_MS": "20", "LULL_MAX_WAIT_MS": "1000"}
    processor = Processor(redis, ProcessorSettings.from_env(env))
    async with FakeBot("speech-secret") as bot:
        sender = await make_sender(
            LULL_HANDLER=bot.url,
            LULL_HANDLER_SECRET="speech-secret",
            LULL_TRANSCRIBE_URL=str(speech_server.make_url("/v1/audio/transcriptions")),
            LULL_TRANSCRIBE_MODEL="pocketsphinx-en-us",
            LULL_TRANSCRIBE_TIMEOUT_MS="30000",
        )
        body = whatsapp_media(
            [("wamid.spoken", "audio", {"mime_type": "audio/ogg; codecs=opus", "id": "spoken",
                                        "voice": True})]
        )  # fmt: skip
        await ingest(redis, processor.keys, body)
        await processor.drain()
        await sender.drain()
    [batch] = bot.received
    assert batch["messages"][0]["transcript"] == SAID
    assert batch["text"] == SAID
