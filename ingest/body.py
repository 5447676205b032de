"""Reading a request body within a bound, on the webhook and the admin API ports alike."""

from __future__ import annotations

import asyncio

from aiohttp import web


async def read_body(request: web.Request, timeout_ms: int) -> bytes:
    """The whole body, or TimeoutError when it has not arrived within timeout_ms."""
    if request.content.is_eof():
        # It came with the headers (nearly every webhook): no timer to arm, ~10 µs saved.
        return await request.read()
    # Bounded: a client that stalls mid-body (or sends a broken chunk, which aiohttp never
    # reports to a waiting reader) would otherwise hold its handler forever.
    async with asyncio.timeout(timeout_ms / 1000):
        return await request.read()
