"""Talking to a fake Graph API's control endpoints (`/_script`, `/_sent`)."""

from __future__ import annotations

from typing import Any

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=10)


async def script_graph(base_url: str, errors: list[dict[str, Any]], latency_ms: int = 0) -> None:
    """Replace the fake's scripted errors and latency."""
    body = {"errors": errors, "latency_ms": latency_ms}
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.post(base_url + "/_script", json=body) as response,
    ):
        response.raise_for_status()


async def sent_records(base_url: str) -> list[dict[str, Any]]:
    """Every request the fake accepted, oldest first."""
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.get(base_url + "/_sent") as response,
    ):
        response.raise_for_status()
        records: list[dict[str, Any]] = await response.json()
        return records
