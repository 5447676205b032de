"""Reading a request body within a bound, on the webhook and the admin API ports alike."""

from __future__ import annotations

import asyncio

from aiohttp import web


def client_max_size(max_bytes: int) -> int:
    """The aiohttp Application's client_max_size for a body of at most max_bytes.

    aiohttp refuses a body of exactly client_max_size up to 3.13 and accepts it from 3.14: one
    byte more keeps the memory bound on both, and read_body decides at max_bytes itself."""
    return max_bytes + 1


async def read_body(request: web.Request, timeout_ms: int, max_bytes: int) -> bytes:
    """The whole body; TimeoutError when it has not arrived within timeout_ms,
    HTTPRequestEntityTooLarge when it is longer than max_bytes."""
    if request.content.is_eof():
        # It came with the headers (nearly every webhook): no timer to arm, ~10 µs saved.
        body = await request.read()
    else:
        # Bounded: a client that stalls mid-body (or sends a broken chunk, which aiohttp
        # never reports to a waiting reader) would otherwise hold its handler forever.
        async with asyncio.timeout(timeout_ms / 1000):
            body = await request.read()
    if len(body) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=len(body))
    return body
