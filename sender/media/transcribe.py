"""An OpenAI-compatible transcription client: `POST /v1/audio/transcriptions`.

The request is multipart/form-data with `file` (the audio, named with an extension the
server knows: ogg, mp3, m4a, wav, …), `model` and `response_format=json`; the answer is
`{"text": "…"}` (OpenAI's API reference, "Create transcription"). A whisper server or any
other that speaks this shape works too, local or remote.
"""

from __future__ import annotations

from typing import Final

import aiohttp
import orjson

from lull.sender.media.settings import TranscribeSettings

# Meta's WhatsApp voice notes are OGG/Opus; other audio keeps a name the server can read.
_EXTENSIONS: Final = {
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "m4a",
    "audio/amr": "amr",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/webm": "webm",
    "video/mp4": "mp4",
}
# A transcript is kept in Redis with the conversation: bounded like everything stored.
MAX_TRANSCRIPT_CHARS: Final = 8000


class TranscribeFailed(Exception):
    """The endpoint did not give a transcript; the message says why."""


class Transcriber:
    """Sends audio to LULL_TRANSCRIBE_URL."""

    def __init__(self, session: aiohttp.ClientSession, settings: TranscribeSettings) -> None:
        self._session = session
        self.settings = settings

    def __repr__(self) -> str:
        return f"Transcriber({self.settings.url!r}, model={self.settings.model!r})"

    async def transcribe(self, audio: bytes, mime_type: str) -> str:
        """The text spoken in audio; TranscribeFailed (or TimeoutError) otherwise."""
        base_type = mime_type.split(";", maxsplit=1)[0].strip().lower()
        form = aiohttp.FormData()
        form.add_field(
            "file",
            audio,
            filename=f"audio.{_EXTENSIONS.get(base_type, 'ogg')}",
            content_type=base_type or "application/octet-stream",
        )
        form.add_field("model", self.settings.model)
        form.add_field("response_format", "json")
        headers = {}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        try:
            async with self._session.post(
                self.settings.url,
                data=form,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_ms / 1000),
            ) as response:
                body = await response.read()
        except aiohttp.ClientError as exc:
            raise TranscribeFailed(f"transcription endpoint unreachable: {exc}") from None
        if response.status != 200:
            raise TranscribeFailed(f"transcription endpoint answered {response.status}")
        try:
            text = orjson.loads(body).get("text")
        except (orjson.JSONDecodeError, AttributeError):
            text = None
        if not isinstance(text, str):
            raise TranscribeFailed("transcription endpoint answered no text")
        return text.strip()[:MAX_TRANSCRIPT_CHARS]
