"""A minimal bot behind lull: checks lull's signature, answers one batch (one user turn).

Run it (from the repository root, with lull's venv or any Python with aiohttp):

    LULL_HANDLER_SECRET=change-me .venv/bin/python examples/python_bot/bot.py

then start lull pointing at it, with the same secret:

    LULL_HANDLER=http://127.0.0.1:8000/lull LULL_HANDLER_SECRET=change-me make run

With OPENAI_BASE_URL set (any OpenAI-compatible server: OpenAI, a local llama.cpp or
vLLM, ...), the answer comes from its chat completions endpoint, with the conversation's
history as context; without it, the bot echoes. Standard library and aiohttp only.

Pictures and voice notes (lull's docs/media.md): a picture reaches the model as an
`image_url` part, from lull's inline `data` or fetched from lull's signed link (no token
needed); a voice note needs nothing here: with LULL_TRANSCRIBE_URL, lull puts its transcript
into the batch's `text`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import signal
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

SIGNATURE_HEADER = "X-Lull-Signature-256"
# Answers remembered by batch_id, so a batch lull delivers again (after a timeout or a
# crash on its side) gets the same answer without a second model call.
REMEMBERED_ANSWERS = 1000
# WhatsApp's largest image is 5 MB: a picture is fetched into memory up to this.
MAX_PICTURE_BYTES = 5 * 1024 * 1024
log = logging.getLogger("lull-example-bot")


@dataclass(frozen=True)
class Config:
    """The bot's settings, from the environment."""

    secret: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8000
    openai_base_url: str = ""
    """Empty: echo. Else e.g. https://api.openai.com/v1 (the path before /chat/completions)."""
    openai_api_key: str = field(default="", repr=False)
    openai_model: str = "gpt-4o-mini"
    openai_timeout_s: float = 20.0
    """Below lull's LULL_HANDLER_TIMEOUT_MS (30 s by default), so the bot answers 503 in
    time for lull to retry, instead of lull giving up on a call still running."""

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Config:
        """From BOT_HOST, BOT_PORT, LULL_HANDLER_SECRET and OPENAI_*."""
        secret = env.get("LULL_HANDLER_SECRET", "")
        if not secret:
            raise SystemExit("LULL_HANDLER_SECRET is required: the secret lull signs with")
        return cls(
            secret=secret,
            host=env.get("BOT_HOST", "127.0.0.1"),
            port=int(env.get("BOT_PORT", "8000")),
            openai_base_url=env.get("OPENAI_BASE_URL", "").rstrip("/"),
            openai_api_key=env.get("OPENAI_API_KEY", ""),
            openai_model=env.get("OPENAI_MODEL", "gpt-4o-mini"),
            openai_timeout_s=float(env.get("OPENAI_TIMEOUT_S", "20")),
        )


def signature_ok(secret: str, header: str | None, body: bytes) -> bool:
    """Whether header is `sha256=` + the hex HMAC-SHA256 of the raw body with secret."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # compare_digest: the time taken does not tell how much of a forged header matched.
    return header is not None and hmac.compare_digest(expected.encode(), header.encode())


def chat_messages(batch: dict[str, Any], pictures: list[str] | None = None) -> list[dict[str, Any]]:
    """The conversation as chat messages: lull's history (oldest first), then this turn,
    with its pictures (data: URLs) as image parts for a vision model."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful, brief assistant."}
    ]
    for item in batch.get("history", []):
        # Only user and bot items are conversation; a "status" item says a reply of the
        # bot was not delivered, which a real bot might mention.
        if item.get("role") == "user" and item.get("text"):
            messages.append({"role": "user", "content": item["text"]})
        elif item.get("role") == "bot" and item.get("text"):
            messages.append({"role": "assistant", "content": item["text"]})
    if not pictures:
        messages.append({"role": "user", "content": batch["text"]})
        return messages
    parts: list[dict[str, Any]] = [{"type": "text", "text": batch["text"] or "(a picture)"}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in pictures]
    messages.append({"role": "user", "content": parts})
    return messages


def picture_media(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The `media` objects of the batch's images that lull linked or inlined."""
    found = []
    for message in batch.get("messages", []):
        for attachment in message.get("attachments", []):
            media = attachment.get("media") or {}
            is_image = attachment.get("type") in ("image", "sticker") or str(
                media.get("mime_type", "")
            ).startswith("image/")
            if is_image and ("data" in media or "url" in media):
                found.append(media)
    return found


async def fetch_pictures(session: aiohttp.ClientSession, batch: dict[str, Any]) -> list[str]:
    """Each picture as a data: URL (what vision models take): lull's inline `data`, else the
    bytes of lull's signed link. A picture that cannot be fetched is left out."""
    urls = []
    for media in picture_media(batch):
        mime = str(media.get("mime_type") or "image/jpeg").split(";")[0]
        data = media.get("data")
        if data is None:
            try:
                async with session.get(
                    media["url"], timeout=aiohttp.ClientTimeout(total=10)
                ) as response:
                    if response.status != 200:
                        raise ValueError(f"link answered {response.status}")
                    body = await response.content.read(MAX_PICTURE_BYTES + 1)
                    if len(body) > MAX_PICTURE_BYTES:
                        raise ValueError("picture too large")
                    mime = response.content_type or mime
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("batch %s: picture not fetched: %s", batch["batch_id"], exc)
                continue
            data = base64.b64encode(body).decode()
        urls.append(f"data:{mime};base64,{data}")
    return urls


class AnswerFailed(Exception):
    """The model could not answer now; lull retries the batch later."""


async def ask_model(
    session: aiohttp.ClientSession, config: Config, messages: list[dict[str, Any]]
) -> str:
    """The model's answer, from POST {OPENAI_BASE_URL}/chat/completions."""
    headers = {"Authorization": f"Bearer {config.openai_api_key}"} if config.openai_api_key else {}
    body = {"model": config.openai_model, "messages": messages}
    try:
        async with session.post(
            f"{config.openai_base_url}/chat/completions",
            json=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=config.openai_timeout_s),
        ) as response:
            if response.status != 200:
                raise AnswerFailed(f"model answered {response.status}")
            answer = await response.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AnswerFailed(f"model unreachable: {type(exc).__name__}") from None
    try:
        return str(answer["choices"][0]["message"]["content"])
    except (KeyError, IndexError, TypeError):
        raise AnswerFailed("model answer has no choices[0].message.content") from None


CONFIG = web.AppKey("config", Config)
SESSION = web.AppKey("session", aiohttp.ClientSession)
ANSWERS: web.AppKey[OrderedDict[str, dict[str, Any]]] = web.AppKey("answers")


async def handle_batch(request: web.Request) -> web.Response:
    """POST /lull: one batch in, `{"replies": [...]}` (or 204: nothing to say) out."""
    config = request.app[CONFIG]
    body = await request.read()
    if not signature_ok(config.secret, request.headers.get(SIGNATURE_HEADER), body):
        # lull dead-letters a batch answered 4xx: a wrong secret shows in `lull dead list`.
        return web.Response(status=401, text="bad signature")
    batch = json.loads(body)
    answers = request.app[ANSWERS]
    if batch["batch_id"] in answers:
        return web.json_response(answers[batch["batch_id"]])
    pictures = await fetch_pictures(request.app[SESSION], batch)
    if not batch["text"].strip() and not pictures:
        # Nothing to read (a reaction, a file): nothing to answer. 204 is "no replies".
        return web.Response(status=204)
    if config.openai_base_url:
        try:
            messages = chat_messages(batch, pictures)
            text = await ask_model(request.app[SESSION], config, messages)
        except AnswerFailed as exc:
            log.warning("batch %s: %s", batch["batch_id"], exc)
            # 503: lull retries with backoff, then dead-letters after LULL_SEND_MAX_ATTEMPTS.
            return web.Response(status=503, text=str(exc))
    else:
        # Echo: the text (a voice note's transcript included), and what each picture is.
        seen = [_describe(url) for url in pictures]
        text = "\n".join(part for part in (batch["text"], *seen) if part)
    answer = {"replies": [{"text": text}]}
    log.info(
        "batch %s: %d message(s) in, 1 reply out", batch["batch_id"], len(batch.get("messages", []))
    )
    answers[batch["batch_id"]] = answer
    if len(answers) > REMEMBERED_ANSWERS:
        answers.popitem(last=False)
    return web.json_response(answer)


def _describe(data_url: str) -> str:
    head, _, data = data_url.partition(",")
    mime = head.removeprefix("data:").removesuffix(";base64")
    return f"[a picture: {mime}, {len(base64.b64decode(data))} bytes]"


def create_app(config: Config) -> web.Application:
    """The bot's aiohttp app."""
    app = web.Application()
    app[CONFIG] = config
    app[ANSWERS] = OrderedDict()

    async def session_ctx(app: web.Application) -> Any:
        async with aiohttp.ClientSession() as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/lull", handle_batch)
    return app


async def serve(config: Config) -> None:
    """Serve until SIGINT or SIGTERM."""
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
        # Printed once the port accepts connections, so a supervisor can wait for this line.
        model = f"model {config.openai_model} at {config.openai_base_url}"
        mode = model if config.openai_base_url else "echo"
        print(f"bot: http://{config.host}:{config.port}/lull ({mode})", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    """Run the bot with the settings of the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(serve(Config.from_env(dict(os.environ))))


if __name__ == "__main__":
    main()
