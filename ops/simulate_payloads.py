"""Webhook bodies in Meta's documented shapes, one text message each, and their signature.

Messenger and Instagram put a message under entry[].messaging[] (sender = the user,
recipient = the page or Instagram account, timestamp in ms); WhatsApp Cloud API under
entry[].changes[].value.messages[] (from = the user's wa_id, timestamp in seconds as a
string), addressed by metadata.phone_number_id. The processor's parsers read them back into
one text event each (tests/ops/test_simulate.py checks it).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

import orjson

from lull.common.conversation import PLATFORMS

__all__ = [
    "BURSTS",
    "DEFAULT_ACCOUNT_IDS",
    "DEMO_MEDIA",
    "PICTURE",
    "PLATFORMS",
    "SIGNATURE_HEADER",
    "USER_ID_STEMS",
    "VOICE",
    "SimMessage",
    "build_body",
    "burst_texts",
    "message_id",
    "run_user_prefix",
    "user_id",
]

# Meta's header name (ingest checks the same one).
SIGNATURE_HEADER = "X-Hub-Signature-256"

# Made-up ids in the shapes Meta uses (the same style as tests/fixtures/): a page id, an
# Instagram professional account id, a WhatsApp phone number id.
DEFAULT_ACCOUNT_IDS = {
    "messenger": "106000000000001",
    "instagram": "17841400000000001",
    "whatsapp": "106540352242922",
}
# User ids are digits on every platform (PSID, IGSID, wa_id = a phone number): the stem,
# digits drawn from the run (a 7-digit prefix), then the user's 6-digit number. Fresh users
# each run: an earlier run's users have history and a seq lull keeps for days
# (LULL_CONVERSATION_TTL_S), so a first turn would never be one again.
USER_ID_STEMS = {"messenger": "7", "instagram": "6", "whatsapp": "1555"}
USER_PREFIX_DIGITS = 7
# WhatsApp's entry[].id (the business account) and the number it shows; not used for routing.
WHATSAPP_BUSINESS_ACCOUNT_ID = "102290129340398"
WHATSAPP_DISPLAY_NUMBER = "15550783881"

# How people split one thought over several messages: each user types one of these.
BURSTS: tuple[tuple[str, ...], ...] = (
    ("hi", "I have", "a problem with my order", "it arrived damaged"),
    ("hello", "is this still available?", "in blue?", "and in size M"),
    ("hey", "quick question", "do you ship to Canada", "how long does it take"),
    ("good morning", "my package", "says delivered", "but I never got it", "order 48213"),
    ("hi there", "I want to change", "the address on my order", "to 12 Elm Street"),
    ("yo", "can I return", "the shoes I bought", "they are too small"),
    ("hello!", "I paid twice", "for the same order", "can you refund one?"),
    ("hi", "what time", "do you open", "on Sundays?"),
)


# `lull simulate --media`: each user also sends a picture and a voice note. On WhatsApp they
# are media ids, on Messenger and Instagram CDN paths under --media-base; `make run`'s fake
# Graph API holds both (dev/fake_media.py), and its fake transcriber knows the voice note.
PICTURE = "image"
VOICE = "voice"
DEMO_MEDIA = {
    PICTURE: {"id": "demo-image", "path": "/cdn/demo-image.png", "mime_type": "image/png"},
    VOICE: {"id": "demo-voice", "path": "/cdn/demo-voice.ogg",
            "mime_type": "audio/ogg; codecs=opus"},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One message a simulated user sends: one webhook POST."""

    platform: str
    account_id: str
    user_id: str
    mid: str
    text: str
    time_ms: int
    """When the user "typed" it (event time, ms since the epoch)."""
    media: str | None = None
    """PICTURE (text is its caption) or VOICE; None: a text message."""
    media_base: str = ""
    """Messenger and Instagram: the base URL of the demo media's CDN paths."""


def run_user_prefix(platform: str, run_id: str) -> str:
    """The user-id prefix of one run: the platform's stem and digits drawn from run_id."""
    stem = USER_ID_STEMS[platform]
    width = USER_PREFIX_DIGITS - len(stem)
    return f"{stem}{zlib.crc32(run_id.encode()) % 10**width:0{width}d}"


def user_id(prefix: str, index: int) -> str:
    """The id of simulated user index (0-based): prefix then a 6-digit number."""
    return f"{prefix}{index + 1:06d}"


def message_id(platform: str, run_id: str, user_index: int, n: int) -> str:
    """A mid unique per run (run_id), in the platform's own style."""
    tail = f"{run_id}-{user_index + 1}-{n + 1}"
    if platform == "whatsapp":
        return f"wamid.sim-{tail}"
    if platform == "instagram":
        return f"ig_sim-{tail}"
    return f"m_sim-{tail}"


def burst_texts(rng: random.Random, count: int) -> list[str]:
    """count fragments of one randomly chosen burst; a long run continues with another."""
    texts: list[str] = []
    while len(texts) < count:
        texts.extend(rng.choice(BURSTS))
    return texts[:count]


def build_body(message: SimMessage) -> bytes:
    """The raw webhook body Meta would POST for message."""
    if message.platform == "whatsapp":
        return orjson.dumps(_whatsapp(message))
    if message.platform not in PLATFORMS:
        raise ValueError(f"unknown platform {message.platform!r}")
    # Instagram's messaging webhooks use Messenger's shape under object "instagram".
    content: dict[str, object] = {"mid": message.mid, "text": message.text}
    if message.media is not None:
        # Messenger's "Message with attachment": attachments[] of {type, payload: {url}}.
        demo = DEMO_MEDIA[message.media]
        kind = "audio" if message.media == VOICE else "image"
        url = message.media_base.rstrip("/") + demo["path"]
        content = {"mid": message.mid, "attachments": [{"type": kind, "payload": {"url": url}}]}
    item = {
        "sender": {"id": message.user_id},
        "recipient": {"id": message.account_id},
        "timestamp": message.time_ms,
        "message": content,
    }
    envelope = {
        "object": "page" if message.platform == "messenger" else "instagram",
        "entry": [{"id": message.account_id, "time": message.time_ms, "messaging": [item]}],
    }
    return orjson.dumps(envelope)


def _whatsapp(message: SimMessage) -> dict[str, object]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": WHATSAPP_DISPLAY_NUMBER,
            "phone_number_id": message.account_id,
        },
        "contacts": [
            {"profile": {"name": f"Sim User {message.user_id}"}, "wa_id": message.user_id}
        ],
        "messages": [
            {
                "from": message.user_id,
                "id": message.mid,
                "timestamp": str(message.time_ms // 1000),
                **_whatsapp_content(message),
            }
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": WHATSAPP_BUSINESS_ACCOUNT_ID, "changes": [{"value": value, "field": "messages"}]}
        ],
    }


def _whatsapp_content(message: SimMessage) -> dict[str, object]:
    """The message's type and content: text, or image/audio with a media id (WhatsApp's
    image and audio messages webhook references; `voice: true` for a voice note)."""
    if message.media is None:
        return {"type": "text", "text": {"body": message.text}}
    demo = DEMO_MEDIA[message.media]
    media: dict[str, object] = {"id": demo["id"], "mime_type": demo["mime_type"]}
    if message.media == VOICE:
        media["voice"] = True
        return {"type": "audio", "audio": media}
    if message.text:
        media["caption"] = message.text
    return {"type": "image", "image": media}
