"""A help desk relay: a Chatwoot agent's reply goes to the user through lull, as a human.

Chatwoot (an API channel inbox that mirrors lull's conversations) POSTs its webhook events
here; each `message_created` an agent sent (`message_type` "outgoing", not a private note,
sender type "user") becomes one send API call (lull's docs/api.md) with `"as": "human"`:
lull sends it in the conversation's order and pauses the bot while the agent has the user.

Which lull conversation: the Chatwoot conversation's custom attribute `lull_conversation`
(`messenger:PAGE:PSID`, ...), else its contact inbox's `source_id` (set it to lull's
conversation key when the contact is created through Chatwoot's API).

Run it (lull's venv, or any Python with aiohttp):

    SEND_API_URL=http://127.0.0.1:8081 SEND_API_TOKEN=$LULL_API_TOKEN RELAY_TOKEN=change-me \
        .venv/bin/python examples/chatwoot_relay/relay.py

and add the webhook in Chatwoot (Settings, Integrations, Webhooks; event "Message
created"): `http://relay-host:8010/chatwoot?token=change-me`. Chatwoot's stable releases sign
no webhooks, hence the token in the URL (compared in constant time).
"""

from __future__ import annotations

import hmac
import logging
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

log = logging.getLogger("lull-chatwoot-relay")


@dataclass(frozen=True)
class Config:
    """The relay's settings, from the environment."""

    send_api_url: str
    send_api_token: str = field(repr=False)
    relay_token: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8010

    @classmethod
    def from_env(cls) -> Config:
        """SEND_API_URL, SEND_API_TOKEN, RELAY_TOKEN, RELAY_HOST, RELAY_PORT."""
        return cls(
            send_api_url=os.environ.get("SEND_API_URL", "http://127.0.0.1:8081").rstrip("/"),
            send_api_token=os.environ["SEND_API_TOKEN"],
            relay_token=os.environ["RELAY_TOKEN"],
            host=os.environ.get("RELAY_HOST", "127.0.0.1"),
            port=int(os.environ.get("RELAY_PORT", "8010")),
        )


CONFIG = web.AppKey("config", Config)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def agent_reply(event: dict[str, Any]) -> tuple[str, str, str] | None:
    """(lull conversation, text, idempotency key) of an agent's reply; None for any other
    event (the user's own messages, private notes, a bot's messages, other events)."""
    if event.get("event") != "message_created" or event.get("message_type") != "outgoing":
        return None
    sender = event.get("sender") or {}
    if event.get("private") or sender.get("type") != "user":
        return None
    text = event.get("content")
    conversation = event.get("conversation") or {}
    target = (conversation.get("custom_attributes") or {}).get("lull_conversation") or (
        conversation.get("contact_inbox") or {}
    ).get("source_id")
    if not isinstance(text, str) or not text.strip() or not isinstance(target, str):
        return None
    account = (event.get("account") or {}).get("id", "")
    # Chatwoot's message id: a webhook Chatwoot sends again is sent to the user once.
    return target, text, f"chatwoot-{account}-{event.get('id')}"


async def chatwoot(request: web.Request) -> web.Response:
    """POST /chatwoot?token=...: one Chatwoot webhook event."""
    config = request.app[CONFIG]
    given = request.query.get("token", "").encode()
    if not hmac.compare_digest(given, config.relay_token.encode()):
        return web.Response(status=401, text="bad token")
    try:
        event = await request.json()
    except ValueError:
        return web.Response(status=400, text="not JSON")
    reply = agent_reply(event) if isinstance(event, dict) else None
    if reply is None:
        return web.Response(status=204)
    conversation, text, key = reply
    url = f"{config.send_api_url}/v1/conversations/{quote(conversation, safe='')}/messages"
    headers = {"Authorization": f"Bearer {config.send_api_token}", "Idempotency-Key": key}
    body = {"replies": [{"text": text}], "as": "human"}
    async with request.app[SESSION].post(url, json=body, headers=headers) as response:
        answer = await response.text()
        if response.status != 202:
            log.warning("lull refused %s: %s %s", key, response.status, answer[:200])
            # 4xx: this reply cannot be sent (say so); else let Chatwoot's side see a failure.
            return web.Response(status=422 if response.status < 500 else 502, text=answer)
    return web.Response(status=200, text=answer, content_type="application/json")


def create_app(config: Config) -> web.Application:
    """The relay's app."""
    app = web.Application(client_max_size=256 * 1024)
    app[CONFIG] = config

    async def session_ctx(app: web.Application) -> Any:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/chatwoot", chatwoot)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    settings = Config.from_env()
    web.run_app(create_app(settings), host=settings.host, port=settings.port)
