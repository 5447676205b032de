"""A small OpenAI-compatible transcription server with a real offline recognizer.

`POST /v1/audio/transcriptions` (multipart `file`, `model`, optional `response_format`:
`json` answers `{"text": …}`, `text` the bare text), as OpenAI's reference has it. The audio
is an OGG/Opus voice note, as WhatsApp sends them (decoded to 16 kHz mono PCM by `opusdec`,
Debian's opus-tools), or a 16 kHz mono 16-bit WAV; pocketsphinx (PyPI; its wheel ships the
US English model, nothing is downloaded) recognizes the words. For `make speech` and local
runs (`LULL_TRANSCRIBE_URL=http://127.0.0.1:8091/v1/audio/transcriptions`):

    python -m lull.dev.speech_server --port 8091

Small and slow by design: one utterance at a time, a few seconds of speech; a demo and a
test fixture, not a production recognizer (a whisper server is one).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import tempfile
import wave
from pathlib import Path
from typing import Any, Final

from aiohttp import web

PATH: Final = "/v1/audio/transcriptions"
SAMPLE_RATE: Final = 16_000
# A voice note of a few minutes at most: the recognizer holds it in memory.
MAX_AUDIO_BYTES: Final = 25 * 1024 * 1024
DECODE_TIMEOUT_S: Final = 60.0


class Recognizer:
    """One pocketsphinx decoder, used one utterance at a time."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder  # noqa: PLC0415  (a dev dependency, loaded on use)

        self._decoder: Any = Decoder(samprate=SAMPLE_RATE)
        self._lock = asyncio.Lock()

    def _recognize(self, pcm: bytes) -> str:
        decoder = self._decoder
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return str(hypothesis.hypstr) if hypothesis is not None else ""

    async def words(self, pcm: bytes) -> str:
        """The words spoken in 16 kHz mono 16-bit PCM."""
        async with self._lock:
            return await asyncio.to_thread(self._recognize, pcm)


RECOGNIZER: Final = web.AppKey("recognizer", Recognizer)


async def pcm_of(audio: bytes) -> bytes:
    """16 kHz mono 16-bit PCM from an OGG/Opus file or such a WAV; ValueError otherwise."""
    if audio.startswith(b"OggS"):
        opusdec = shutil.which("opusdec")
        if opusdec is None:
            raise ValueError("opusdec is not installed (Debian: opus-tools)")
        with tempfile.TemporaryDirectory(prefix="lull-speech") as tmp:
            source, target = Path(tmp) / "in.ogg", Path(tmp) / "out.wav"
            source.write_bytes(audio)
            process = await asyncio.create_subprocess_exec(
                opusdec, "--quiet", "--rate", str(SAMPLE_RATE), str(source), str(target),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _out, err = await asyncio.wait_for(process.communicate(), DECODE_TIMEOUT_S)
            if process.returncode != 0:
                raise ValueError(f"opusdec failed: {err.decode(errors='replace').strip()}")
            audio = target.read_bytes()
    try:
        with wave.open(io.BytesIO(audio)) as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                raise ValueError("WAV must be 16 kHz mono 16-bit")
            return bytes(wav.readframes(wav.getnframes()))
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not OGG/Opus or WAV: {exc}") from None


async def transcribe(request: web.Request) -> web.Response:
    """One transcription, answered as OpenAI's endpoint answers."""
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField) or not form.get("model"):
        return _error(400, "a multipart `file` and a `model` are required")
    audio = upload.file.read()
    upload.file.close()
    try:
        text = await request.app[RECOGNIZER].words(await pcm_of(audio))
    except ValueError as exc:
        return _error(400, str(exc))
    if form.get("response_format") == "text":
        return web.Response(text=text)
    return web.json_response({"text": text})


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error"}}
    return web.json_response(body, status=status)


def create_speech_app() -> web.Application:
    """The server's app (loads the recognizer's model, under a second)."""
    app = web.Application(client_max_size=MAX_AUDIO_BYTES)
    app[RECOGNIZER] = Recognizer()
    app.router.add_post(PATH, transcribe)
    return app


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    args = parser.parse_args()
    web.run_app(create_speech_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
