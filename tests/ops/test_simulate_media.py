"""`lull simulate --media`: a picture and a voice note in Meta's shapes, which the processor
reads back as attachments, and which `make run`'s fake Graph API holds and transcribes."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from lull.common.platforms import parse
from lull.dev.fake_graph import create_fake_graph_app
from lull.dev.fake_media import DEMO_WORDS
from lull.ops.simulate import SimulateConfig
from lull.ops.simulate_payloads import DEMO_MEDIA, PICTURE, VOICE, SimMessage, build_body
from tests.conftest import FIXTURES

BASE = "http://127.0.0.1:8090"


def _message(platform: str, media: str, text: str = "") -> SimMessage:
    return SimMessage(platform, "1234", "5678", "mid-1", text, 1763800000123, media, BASE)


@pytest.mark.parametrize("platform", ["messenger", "instagram", "whatsapp"])
def test_a_picture_and_a_voice_note_parse_back_as_attachments(platform: str) -> None:
    [picture] = parse(build_body(_message(platform, PICTURE, "look"))).events
    [voice] = parse(build_body(_message(platform, VOICE))).events
    assert picture.kind == voice.kind == "attachment"
    [image] = picture.attachments
    [audio] = voice.attachments
    if platform == "whatsapp":
        assert (image["type"], image["id"], picture.text) == ("image", "demo-image", "look")
        assert (audio["type"], audio["id"]) == ("audio", "demo-voice")
        assert voice.raw["audio"]["voice"] is True
    else:
        assert (image["type"], image["url"]) == ("image", BASE + "/cdn/demo-image.png")
        assert (audio["type"], audio["url"]) == ("audio", BASE + "/cdn/demo-voice.ogg")


def test_the_whatsapp_voice_note_has_the_documented_shape() -> None:
    fixture = orjson.loads((FIXTURES / "whatsapp" / "audio.json").read_bytes())
    body = orjson.loads(build_body(_message("whatsapp", VOICE)))
    documented = fixture["entry"][0]["changes"][0]["value"]["messages"][0]["audio"]
    sent = body["entry"][0]["changes"][0]["value"]["messages"][0]["audio"]
    # Meta's also has sha256 and a url lasting minutes, which lull does not use.
    assert set(sent) <= set(documented)


def test_media_adds_two_posts_per_user() -> None:
    config = SimulateConfig(url=BASE, app_secret="s", users=3, messages_per_user=2, media=True)
    assert config.planned == 12


async def test_make_runs_fake_holds_the_demo_media_and_hears_the_voice_note() -> None:
    server = TestServer(create_fake_graph_app(None))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            auth = {"Authorization": "Bearer any"}
            voice_id = DEMO_MEDIA[VOICE]["id"]
            url = server.make_url(f"/v23.0/{voice_id}")
            async with session.get(url, params={"phone_number_id": "1"}, headers=auth) as got:
                download = (await got.json())["url"]
            async with session.get(download, headers=auth) as got:
                note = await got.read()
            async with session.get(server.make_url(DEMO_MEDIA[PICTURE]["path"])) as got:
                assert (got.status, got.content_type) == (200, "image/png")
            form = aiohttp.FormData()
            form.add_field("file", note, filename="audio.ogg", content_type="audio/ogg")
            form.add_field("model", "whisper-1")
            transcriptions = server.make_url("/v1/audio/transcriptions")
            async with session.post(transcriptions, data=form) as got:
                assert await got.json() == {"text": DEMO_WORDS}
    finally:
        await server.close()
