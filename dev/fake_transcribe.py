"""A fake OpenAI-compatible transcription server: `POST /v1/audio/transcriptions`.

Shaped from OpenAI's API reference ("Create transcription"): multipart/form-data with a
`file` (the audio) and a `model`, optional `response_format` (`json`, the default, answers
`{"text": …}`; `text` answers the bare text). It answers the text registered for the
file's bytes, and records every call, so a test sees how often a voice note was sent.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

PATH: Final = "/v1/audio/transcriptions"


@dataclass
class Call:
    """One transcription request as the fake saw it."""

    model: str
    filename: str
    content_type: str
    sha256: str
    authorization: str | None


@dataclass
class FakeTranscriber:
    """What the fake answers and what it was asked."""

    texts: dict[str, str] = field(default_factory=dict)
    """sha256 (hex) of an audio file → its transcript."""
    calls: list[Call] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    """Statuses of the next answers; 200 once empty."""
    latency_ms: int = 0
    api_key: str | None = None
    """When set, a request without `Authorization: Bearer <api_key>` is answered 401."""

    def speak(self, audio: bytes, text: str) -> None:
        """Answer text for audio."""
        self.texts[hashlib.sha256(audio).hexdigest()] = text


FAKE_TRANSCRIBER: Final = web.AppKey("fake_transcriber", FakeTranscriber)


def create_fake_transcribe_app() -> web.Application:
    """The fake's app; its state is app[FAKE_TRANSCRIBER]."""
    app = web.Application(client_max_size=26 * 1024 * 1024)
    add_transcribe_routes(app)
    return app


def add_transcribe_routes(app: web.Application) -> FakeTranscriber:
    """Serve the fake's `POST /v1/audio/transcriptions` from app."""
    app[FAKE_TRANSCRIBER] = FakeTranscriber()
    app.router.add_post(PATH, transcribe)
    return app[FAKE_TRANSCRIBER]


async def transcribe(request: web.Request) -> web.Response:
    """Check the request's shape, then answer the registered text."""
    fake = request.app[FAKE_TRANSCRIBER]
    form = await request.post()
    upload = form.get("file")
    model = form.get("model")
    if not isinstance(upload, web.FileField) or not isinstance(model, str) or not model:
        return _error(400, "a multipart `file` and a `model` are required")
    audio = upload.file.read()
    upload.file.close()
    digest = hashlib.sha256(audio).hexdigest()
    authorization = request.headers.get("Authorization")
    fake.calls.append(Call(model, upload.filename, upload.content_type, digest, authorization))
    if fake.latency_ms:
        await asyncio.sleep(fake.latency_ms / 1000)
    if fake.api_key is not None and authorization != f"Bearer {fake.api_key}":
        return _error(401, "Incorrect API key provided")
    status = fake.statuses.popleft() if fake.statuses else 200
    if status != 200:
        return _error(status, "scripted failure")
    text = fake.texts.get(digest, "")
    if form.get("response_format") == "text":
        return web.Response(text=text)
    return web.json_response({"text": text})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}},
                             status=status)  # fmt: skip
