"""Voice notes become text before the bot is called: once per message, kept in Redis so a
retry, a claim or a replay finds it, bounded in time, and never failing the batch.

The transcript goes into the message (`transcript`, or `transcript_error` saying why there
is none), into the batch's `text` (so a text-only bot answers it) and, through the batch,
into the history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import structlog

from lull.common.batch import Batch, Message
from lull.common.store.transcripts import Transcript, TranscriptStore
from lull.sender.media.attachments import is_audio, media_of
from lull.sender.media.fetch import MediaFetcher, Refused
from lull.sender.media.metrics import MediaMetrics
from lull.sender.media.settings import TRANSCRIBE_MAX_BYTES
from lull.sender.media.signing import Target
from lull.sender.media.transcribe import TranscribeFailed, Transcriber

log = structlog.get_logger("lull.sender.media")


class Transcripts:
    """Adds transcripts to batches (LULL_TRANSCRIBE_URL)."""

    def __init__(
        self,
        transcriber: Transcriber,
        fetcher: MediaFetcher,
        store: TranscriptStore,
        metrics: MediaMetrics,
    ) -> None:
        self._transcriber = transcriber
        self._fetcher = fetcher
        self._store = store
        self._metrics = metrics

    async def add(self, batch: Batch, *, fresh: bool) -> Batch:
        """batch with its voice notes' transcripts; fresh: transcribe those not done yet
        (before the bot is called), else only what is stored (the bot has answered)."""
        voices = {
            m.mid: media.target
            for m in batch.messages
            for a in m.attachments
            if is_audio(a) and (media := media_of(batch, m, a)) is not None
        }
        if not voices:
            return batch
        known = await self._store.read(batch.conversation, list(voices))
        missing = [mid for mid in voices if mid not in known]
        if fresh and missing:
            made = await asyncio.gather(*(self._make(voices[mid]) for mid in missing))
            for mid, transcript in zip(missing, made, strict=True):
                await self._store.write(batch.conversation, mid, transcript)
                known[mid] = transcript
        if not known:
            return batch
        messages = [_with(m, known.get(m.mid)) for m in batch.messages]
        text = "\n".join(part for m in messages if (part := spoken_text(m)))
        return dataclasses.replace(batch, messages=messages, text=text)

    async def _make(self, target: Target) -> Transcript:
        """Download and transcribe, within LULL_TRANSCRIBE_TIMEOUT_MS; a failure is a
        Transcript with the reason."""
        started = time.perf_counter()
        timeout_s = self._transcriber.settings.timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout_s):
                audio, mime = await self._fetcher.read(target, TRANSCRIBE_MAX_BYTES)
                text = await self._transcriber.transcribe(audio, mime)
        except TimeoutError:
            return self._failed(target, started, f"transcription took over {timeout_s:g} s")
        except Refused as exc:
            return self._failed(target, started, f"audio not fetched: {exc}")
        except TranscribeFailed as exc:
            return self._failed(target, started, str(exc))
        elapsed = time.perf_counter() - started
        self._metrics.transcription_seconds.labels(target.platform, "ok").observe(elapsed)
        return Transcript(text)

    def _failed(self, target: Target, started: float, reason: str) -> Transcript:
        elapsed = time.perf_counter() - started
        self._metrics.transcription_seconds.labels(target.platform, "failed").observe(elapsed)
        log.warning("voice note not transcribed", platform=target.platform, reason=reason)
        return Transcript(None, reason)


def _with(message: Message, transcript: Transcript | None) -> Message:
    if transcript is None:
        return message
    if transcript.error is not None:
        return dataclasses.replace(
            message, extra={**message.extra, "transcript_error": transcript.error}
        )
    return dataclasses.replace(message, extra={**message.extra, "transcript": transcript.text})


def spoken_text(message: Message) -> str:
    """A message's text and, for a voice note, its transcript: what a text-only bot reads."""
    transcript = message.extra.get("transcript")
    parts = [message.text, transcript if isinstance(transcript, str) else ""]
    return "\n".join(part for part in parts if part)
