"""Human turns beside the chaos load: people in the Page Inbox and the WhatsApp Business app
answering some of the simulated users, so conversations pause and resume during the run.

Every every_s, one human message goes to a user of one of the load's latest rounds, in
Meta's shapes: a Messenger or Instagram message echo sent by the Page Inbox's app, or a
WhatsApp smb_message_echoes item. With the stack's short LULL_HUMAN_PAUSE_MS, each pauses
its conversation for a moment: batches closed meanwhile are stamped paused, and the verdict
checks that the bot never gets one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from lull.common.conversation import PLATFORMS
from lull.common.signing import sign
from lull.ops.simulate_payloads import (
    DEFAULT_ACCOUNT_IDS,
    SIGNATURE_HEADER,
    WHATSAPP_BUSINESS_ACCOUNT_ID,
    WHATSAPP_DISPLAY_NUMBER,
    user_id,
)
from tests.chaos.load import LoadPlan
from tests.chaos.stack import APP_SECRET

PAGE_INBOX_APP_ID = 263902037430900


@dataclass(frozen=True)
class HumanPlan:
    """How often a human writes."""

    every_s: float = 0.25
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class HumanPost:
    """One human message posted to ingest."""

    conversation: str
    mid: str
    status: int | None
    at_ms: int


@dataclass
class HumanResult:
    """Every human message of the run."""

    posts: list[HumanPost] = field(default_factory=list)

    @property
    def conversations(self) -> frozenset[str]:
        """Conversations a human wrote in and ingest accepted (a 503 may still count: a
        refused POST may have been stored, so any POST is enough to excuse a pause)."""
        return frozenset(p.conversation for p in self.posts)


async def run_humans(
    plan: HumanPlan, load: LoadPlan, url: str, seed: int, stop: asyncio.Event
) -> HumanResult:
    """Post a human message every plan.every_s until stop is set."""
    rng = random.Random(seed * 7_919)
    result = HumanResult()
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        n = 0
        started = time.monotonic()
        while not stop.is_set():
            # A user of one of the last few rounds (tests/chaos/load.py names them so): a
            # human answers people who are writing now, whose windows may be open.
            latest = int((time.monotonic() - started) / load.round_every_s)
            round_n = max(0, latest - rng.randrange(len(PLATFORMS) + 1))
            platform = PLATFORMS[round_n % len(PLATFORMS)]
            group = (round_n // len(PLATFORMS)) % load.user_groups
            user = user_id(f"9{group:03d}", rng.randrange(load.users_per_round))
            mid = f"human-s{seed}-{n}"
            conversation = f"{platform}:{DEFAULT_ACCOUNT_IDS[platform]}:{user}"
            body = _body(platform, user, mid, f"a human answers ({n})")
            status = await _post(session, url, body)
            result.posts.append(HumanPost(conversation, mid, status, int(time.time() * 1000)))
            n += 1
            # Pacing the humans is the load's shape, not a wait for work.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), plan.every_s)
    return result


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> int | None:
    """The answer's status; None when none came (Meta would retry: the pause may be late)."""
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(APP_SECRET, body)}
    status: int | None = None
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as answer:
            await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError):
        status = None
    return status


def _body(platform: str, user: str, mid: str, text: str) -> bytes:
    """A Page Inbox echo (Messenger, Instagram) or a WhatsApp Business app echo."""
    account = DEFAULT_ACCOUNT_IDS[platform]
    now_ms = int(time.time() * 1000)
    if platform == "whatsapp":
        echo = {
            "from": WHATSAPP_DISPLAY_NUMBER, "to": f"+{user}", "id": f"wamid.{mid}",
            "timestamp": str(now_ms // 1000), "type": "text", "text": {"body": text},
        }  # fmt: skip
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": WHATSAPP_DISPLAY_NUMBER,
                         "phone_number_id": account},
            "message_echoes": [echo],
        }  # fmt: skip
        change = {"value": value, "field": "smb_message_echoes"}
        doc = {
            "object": "whatsapp_business_account",
            "entry": [{"id": WHATSAPP_BUSINESS_ACCOUNT_ID, "changes": [change]}],
        }
        return orjson.dumps(doc)
    item = {
        "sender": {"id": account}, "recipient": {"id": user}, "timestamp": now_ms,
        "message": {"is_echo": True, "app_id": PAGE_INBOX_APP_ID, "mid": f"m_{mid}",
                    "text": text},
    }  # fmt: skip
    obj = "page" if platform == "messenger" else "instagram"
    return orjson.dumps({"object": obj, "entry": [{"id": account, "time": now_ms,
                                                   "messaging": [item]}]})  # fmt: skip
