"""Webhook bodies with media, shaped like Meta's references (the same shapes as the
fixtures in tests/fixtures/whatsapp/image.json, audio.json and messenger/attachments_image)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from lull.common.store.keys import Keys

WA_ACCOUNT = "wa1"
WA_USER = "16315551234"
PAGE = "p1"
PSID = "7000000000000001"


def whatsapp_media(items: list[tuple[str, str, dict[str, Any]]]) -> bytes:
    """One WhatsApp webhook with messages (mid, type, media object) from one user."""
    now_s = int(time.time())
    messages = [
        {"from": WA_USER, "id": mid, "timestamp": str(now_s), "type": kind, kind: media}
        for mid, kind, media in items
    ]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_ACCOUNT},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": WA_USER}],
        "messages": messages,
    }
    change = {"value": value, "field": "messages"}
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1022", "changes": [change]}]}
    return orjson.dumps(body)


def messenger_attachment(mid: str, kind: str, url: str) -> bytes:
    """One Messenger webhook with one attachment `{type, payload: {url}}`."""
    now_ms = int(time.time() * 1000)
    item = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE},
        "timestamp": now_ms,
        "message": {"mid": mid, "attachments": [{"type": kind, "payload": {"url": url}}]},
    }
    return orjson.dumps(
        {"object": "page", "entry": [{"id": PAGE, "time": now_ms, "messaging": [item]}]}
    )


async def ingest(redis: aioredis.Redis, keys: Keys, body: bytes) -> None:
    """What ingest stores for one accepted POST."""
    fields = {"body": body, "received_at": int(time.time() * 1000), "sig": "ok"}
    await redis.xadd(keys.inbound(), fields)  # type: ignore[arg-type]
