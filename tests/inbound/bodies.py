"""Webhook bodies of several conversations, and users whose conversations land on each part
of a split inbound stream."""

from __future__ import annotations

import orjson
from aiohttp.test_utils import TestClient, TestServer

from lull.common.signing import sign
from lull.common.store.keys import inbound_part
from lull.ingest.app import create_app
from lull.ingest.settings import IngestSettings
from tests.ingest.conftest import SECRET

PAGE = "p1"

Message = tuple[str, str, str, int]
"""(user, mid, text, event time ms) of a Messenger text message to PAGE."""


def users_on_parts(parts: int, per_part: int, prefix: str = "u") -> list[list[str]]:
    """per_part user ids for each part, part by part."""
    found: list[list[str]] = [[] for _ in range(parts)]
    candidate = 0
    while any(len(users) < per_part for users in found):
        user = f"{prefix}{candidate}"
        candidate += 1
        users = found[inbound_part(f"messenger:{PAGE}:{user}", parts)]
        if len(users) < per_part:
            users.append(user)
    return found


def messenger_body(messages: list[Message]) -> bytes:
    """One Messenger POST holding messages, one entry per message (as Meta batches them)."""
    entries = [
        {
            "id": PAGE,
            "time": t_ms,
            "messaging": [
                {
                    "sender": {"id": user},
                    "recipient": {"id": PAGE},
                    "timestamp": t_ms,
                    "message": {"mid": mid, "text": text},
                }
            ],
        }
        for user, mid, text, t_ms in messages
    ]
    return orjson.dumps({"object": "page", "entry": entries})


def signed(body: bytes) -> dict[str, str]:
    """Headers of a POST Meta signed with the tests' app secret."""
    return {"X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"}


async def post_all(env: dict[str, str], bodies: list[bytes]) -> list[int]:
    """POST each body, signed, to an ingest app started with env; the statuses."""
    settings = IngestSettings.from_env({**env, "LULL_APP_SECRET": SECRET, "LULL_VERIFY_TOKEN": "v"})
    async with TestClient(TestServer(create_app(settings))) as ingest:
        statuses = []
        for body in bodies:
            response = await ingest.post("/webhook", data=body, headers=signed(body))
            statuses.append(response.status)
        return statuses
