"""The chaos bot: an HTTP handler on loopback that records every batch it is handed.

It answers one reply per batch whose text names the batch ("batch=<batch_id>"), so the
fake Graph API's records map back to batches. `latency_ms` makes it slow on command.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson
from aiohttp import web

REPLY_PREFIX = "batch="


@dataclass(frozen=True, slots=True)
class Receipt:
    """One batch as the bot received it (a retried batch is received again)."""

    batch_id: str
    seq: int
    conversation: str
    mids: tuple[str, ...]
    at_ms: int


def reply_text(batch_id: str) -> str:
    """The text the bot answers for a batch."""
    return REPLY_PREFIX + batch_id


def batch_of_reply(text: str) -> str | None:
    """The batch id a reply text names, None for any other text."""
    return text.removeprefix(REPLY_PREFIX) if text.startswith(REPLY_PREFIX) else None


class RecordingBot:
    """Serve with `await start()`, `await stop()` at the end; `receipts` in arrival order."""

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.latency_ms = 0
        app = web.Application()
        app.router.add_post("/bot", self._batch)
        # Cancelling a handler whose client gave up ends a scripted latency early.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1
        )
        self._port: int | None = None

    @property
    def url(self) -> str:
        """LULL_HANDLER for the senders."""
        assert self._port is not None, "RecordingBot not started"
        return f"http://127.0.0.1:{self._port}/bot"

    async def start(self) -> RecordingBot:
        """Listen on a free loopback port."""
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Stop listening."""
        await self._runner.cleanup()

    async def _batch(self, request: web.Request) -> web.Response:
        batch = orjson.loads(await request.read())
        self.receipts.append(
            Receipt(
                batch_id=batch["batch_id"],
                seq=batch["seq"],
                conversation=batch["conversation"],
                mids=tuple(m["mid"] for m in batch["messages"]),
                at_ms=int(time.time() * 1000),
            )
        )
        if self.latency_ms:
            # A slow bot; the sender's handler timeout may give up on it and retry.
            await asyncio.sleep(self.latency_ms / 1000)
        replies = {"replies": [{"text": reply_text(batch["batch_id"])}]}
        return web.Response(body=orjson.dumps(replies), content_type="application/json")
