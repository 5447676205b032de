"""A fake bot on loopback: verifies lull's signature, records batches, answers per a script."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.contract.check import problems

SIGNATURE_HEADER = "X-Lull-Signature-256"


@dataclass
class BotState:
    """What the bot received and how it answers next."""

    secret: str
    """Empty: signatures are not checked (lull then sends none)."""
    received: list[dict[str, Any]] = field(default_factory=list)
    """Batches whose signature checked out, in arrival order (including ones answered 5xx)."""
    signatures: list[str | None] = field(default_factory=list)
    """The signature header of each received batch (None when absent)."""
    rejected: int = 0
    """Requests answered 401 for a missing or wrong signature."""
    statuses: deque[int] = field(default_factory=deque)
    """Statuses of the next answers, one per request; 200 once empty."""
    latency_ms: int = 0
    body: bytes | None = None
    """Raw body of every answer; None: the default echo replies on 2xx, empty on 204."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers on every answer (e.g. Retry-After)."""


BOT_STATE = web.AppKey("bot_state", BotState)


def _signature_ok(secret: str, header: str | None, body: bytes) -> bool:
    # Computed here, not with common.signing.sign, so the test checks lull's signing.
    if not secret:
        return True
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


async def _batch(request: web.Request) -> web.Response:
    state = request.app[BOT_STATE]
    body = await request.read()
    signature = request.headers.get(SIGNATURE_HEADER)
    if not _signature_ok(state.secret, signature, body):
        state.rejected += 1
        return web.Response(status=401, text="bad signature")
    batch = orjson.loads(body)
    state.received.append(batch)
    state.signatures.append(signature)
    if state.latency_ms:
        # Simulates a slow bot; the runner cancels this when lull's client gives up.
        await asyncio.sleep(state.latency_ms / 1000)
    status = state.statuses.popleft() if state.statuses else 200
    if state.body is not None:
        answer = state.body
    elif status == 204 or not 200 <= status < 300:
        answer = b""
    else:
        answer = orjson.dumps({"replies": [{"text": "echo: " + str(batch.get("text", ""))}]})
    content_type = "application/json" if 200 <= status < 300 else "text/plain"
    return web.Response(
        status=status, body=answer or None, headers=state.headers, content_type=content_type
    )


def create_fake_bot_app(secret: str) -> web.Application:
    """The fake bot's app; its BotState is app[BOT_STATE]."""
    app = web.Application()
    app[BOT_STATE] = BotState(secret=secret)
    app.router.add_post("/bot", _batch)
    return app


class FakeBot:
    """The fake bot served on 127.0.0.1 on a free port; use start()/stop() or async with."""

    def __init__(self, secret: str) -> None:
        self.app = create_fake_bot_app(secret)
        # Cancelling handlers on disconnect ends a scripted latency when the client times out.
        # A short shutdown so stop() does not wait on a scripted latency still sleeping.
        self._runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=1
        )
        self._port: int | None = None

    @property
    def state(self) -> BotState:
        """The bot's BotState."""
        return self.app[BOT_STATE]

    @property
    def received(self) -> list[dict[str, Any]]:
        """Batches received with a valid signature."""
        return self.state.received

    @property
    def url(self) -> str:
        """The URL to POST batches to."""
        if self._port is None:
            raise RuntimeError("FakeBot not started")
        return f"http://127.0.0.1:{self._port}/bot"

    def script(
        self,
        *,
        statuses: tuple[int, ...] = (),
        latency_ms: int = 0,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Set how the next requests are answered (replaces the previous script)."""
        self.state.statuses = deque(statuses)
        self.state.latency_ms = latency_ms
        self.state.body = body
        self.state.headers = dict(headers or {})

    async def start(self) -> FakeBot:
        """Listen on a free loopback port."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Stop listening; the port then refuses connections."""
        await self._runner.cleanup()

    async def __aenter__(self) -> FakeBot:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        if exc_info[0] is None:
            # What lull posted is the bot's contract: a test that drives the bot checks it.
            broken = [
                f"batch {n}: {p}" for n, b in enumerate(self.received) for p in problems("batch", b)
            ]
            assert not broken, (
                "the bot received batches that break `lull schema batch`:\n" + "\n".join(broken)
            )
