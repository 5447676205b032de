"""Raw HTTP on loopback: bytes a client library would never send, and the answer's status."""

from __future__ import annotations

import asyncio
import contextlib


async def exchange(port: int, request: bytes, *, timeout_s: float = 15) -> bytes:
    """Send request to 127.0.0.1:port and return the answer (up to its first 64 KiB) as the
    server closes or stops writing; b"" when it closed without a word."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # Written meanwhile: a server may answer (and close) before it read everything.
        sending = asyncio.create_task(_send(writer, request))
        try:
            async with asyncio.timeout(timeout_s):
                answer = await reader.read(65536)
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
        return answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        writer.write(data)
        await writer.drain()


def status_of(answer: bytes) -> int | None:
    """The status code of an HTTP/1.1 answer, None when there is none."""
    parts = answer.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return None
    return int(parts[1])
