"""Media for the bot: signed links served from Meta, inline bytes, voice note transcripts.

The one import path for the sender: `MediaService.build` gives None when nothing is
configured (no LULL_MEDIA_SECRET, no LULL_MEDIA_INLINE_MAX_BYTES, no LULL_TRANSCRIBE_URL),
and the sender then works as it does without media. docs/media.md describes it all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from lull.common.batch import Batch
from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.transcripts import TranscriptStore
from lull.sender.graph.routes import GraphRoutes
from lull.sender.media.fetch import FetchLimits, MediaFetcher, Refused
from lull.sender.media.hosts import Allowlist
from lull.sender.media.links import MediaLinks
from lull.sender.media.metrics import MediaMetrics
from lull.sender.media.server import create_media_app
from lull.sender.media.settings import MediaSettings, TranscribeSettings
from lull.sender.media.signing import Signer, Target
from lull.sender.media.transcribe import Transcriber
from lull.sender.media.transcripts import Transcripts, spoken_text

__all__ = [
    "MediaService",
    "MediaSettings",
    "Refused",
    "Signer",
    "Target",
    "TranscribeSettings",
    "spoken_text",
]


class MediaService:
    """One sender replica's media: links and inline data for the bot, transcripts, and the
    media server's app."""

    def __init__(
        self,
        settings: MediaSettings,
        *,
        session: aiohttp.ClientSession,
        fetcher: MediaFetcher,
        transcripts: Transcripts | None,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.signer = Signer(settings.secret) if settings.links else None
        self._links = MediaLinks(settings, self.signer, fetcher)
        self._transcripts = transcripts
        self._session = session

    @classmethod
    def build(
        cls,
        settings: MediaSettings,
        *,
        client: RedisClient,
        keys: Keys,
        routes: GraphRoutes,
        graph_version: str,
        tokens: Mapping[str, str],
        conversation_ttl_s: int,
        registry: CollectorRegistry,
    ) -> MediaService | None:
        """The service, or None when no media feature is configured."""
        if not (settings.links or settings.inline_max_bytes or settings.transcribe):
            return None
        # Downloads get connections of their own: a large file never holds up a reply.
        session = aiohttp.ClientSession()
        metrics = MediaMetrics(registry)
        fetcher = MediaFetcher(
            session,
            allowlist=Allowlist.of(settings.hosts, [routes.default_base, *routes.bases.values()]),
            routes=routes,
            graph_version=graph_version,
            tokens=tokens,
            limits=FetchLimits(settings.max_bytes, settings.timeout_ms / 1000,
                               settings.concurrency),
            metrics=metrics,
        )  # fmt: skip
        transcripts = None
        if settings.transcribe is not None:
            transcripts = Transcripts(
                Transcriber(session, settings.transcribe),
                fetcher,
                TranscriptStore(client, keys, conversation_ttl_s),
                metrics,
            )
        return cls(settings, session=session, fetcher=fetcher, transcripts=transcripts)

    async def before_bot(self, batch: Batch, *, fresh: bool) -> Batch:
        """batch with its voice notes' transcripts (fresh: make the missing ones)."""
        if self._transcripts is None:
            return batch
        return await self._transcripts.add(batch, fresh=fresh)

    async def for_bot(self, batch: Batch, document: dict[str, Any]) -> dict[str, Any]:
        """What the bot gets: document with the `media` objects."""
        if self.signer is None and not self.settings.inline_max_bytes:
            return document
        return await self._links.attach(batch, document)

    def app(self) -> web.Application | None:
        """The media server (None without LULL_MEDIA_SECRET: no links to serve)."""
        if self.signer is None:
            return None
        return create_media_app(self.fetcher, self.signer)

    async def close(self) -> None:
        """Close the download session."""
        await self._session.close()
