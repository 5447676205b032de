"""Media and transcription metrics, in the sender's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

TRANSCRIBE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


class MediaMetrics:
    """Downloads, bytes, refusals, transcription time; per platform."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.downloads = Counter(
            "lull_media_downloads",
            "Media fetched from Meta (links served, inline data, audio to transcribe) by "
            "platform and outcome: ok or the refusal's reason",
            ["platform", "outcome"],
            registry=registry,
        )
        self.bytes = Counter(
            "lull_media_bytes",
            "Media bytes streamed from Meta",
            ["platform"],
            registry=registry,
        )
        self.refusals = Counter(
            "lull_media_refusals",
            "Media requests refused: signature, expired, malformed, host (not on "
            "LULL_MEDIA_HOSTS), too_large, busy (LULL_MEDIA_CONCURRENCY), timeout, upstream "
            "(Meta failed), no_token",
            ["reason"],
            registry=registry,
        )
        self.transcription_seconds = Histogram(
            "lull_transcription_seconds",
            "Voice note transcription, download included, by platform and outcome (ok, failed)",
            ["platform", "outcome"],
            buckets=TRANSCRIBE_BUCKETS_S,
            registry=registry,
        )
