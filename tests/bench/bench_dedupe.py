"""Redis memory per remembered message id: what the dedupe horizon (LULL_DEDUPE_TTL_S) costs.

A closed window leaves the mids of its messages in its conversation's seen set for the
dedupe TTL (so a redelivered webhook is a no-op). CONVERSATIONS conversations of MIDS
WhatsApp-sized message ids each are applied and closed through WindowStore, the outbound
stream is deleted, and INFO used_memory is read against the empty start: the growth per
mid is what one remembered message costs (its share of the key included).

How many mids are remembered at once is the message rate times the TTL, so the figure is
also printed for a reference load at the 0.1 default (48 h) and at today's (8 days).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from lull.common.env import Env
from lull.common.events import Event
from lull.common.redis_conn import connect
from lull.common.store.keys import Keys
from lull.common.store.windows import WindowStore
from lull.processor.settings import window_from_env
from tests.bench.bench_support import run_async
from tests.bench.procs import BenchError

NAMESPACE = "dedupe"
CONVERSATIONS = 20_000
MIDS = 5
CHUNK = 1_000
PHONE_NUMBER_ID = "106540352242922"
# The reference load for the horizon figures.
MESSAGES_PER_DAY = 1_000_000
DAY_S = 86_400
OLD_TTL_S = 2 * DAY_S


@dataclass(frozen=True)
class Dedupe:
    """used_memory growth per remembered mid, and the horizon it is kept for."""

    per_mid_bytes: float
    ttl_s: int

    def retained_mb(self, ttl_s: int) -> float:
        """MB remembered at the reference load with this TTL."""
        return MESSAGES_PER_DAY * ttl_s / DAY_S * self.per_mid_bytes / 1e6

    def line(self) -> str:
        """The report line."""
        return (
            f"dedupe memory: {self.per_mid_bytes:.0f} B per remembered message id "
            f"(WhatsApp-sized wamids, {MIDS} per conversation); at "
            f"{MESSAGES_PER_DAY:,} user messages a day: {self.retained_mb(OLD_TTL_S):,.0f} MB "
            f"with 0.1's 48 h, {self.retained_mb(self.ttl_s):,.0f} MB with today's "
            f"{self.ttl_s / DAY_S:g} days"
        )


def _event(conversation: int, n: int, now_ms: int) -> Event:
    user = f"1650555{conversation:07d}"
    # A real wamid is base64 of about 44 bytes behind "wamid.": 60-odd characters.
    mid = f"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUJDREVGMDEyMzQ1Njc4OTAx{conversation:07d}{n}="
    raw = {"from": user, "id": mid, "timestamp": str(now_ms // 1000), "type": "text"}
    return Event("whatsapp", PHONE_NUMBER_ID, user, mid, now_ms, "text", text="ok", raw=raw)


def measure_dedupe(url: str, client: Redis) -> Dedupe:
    """Apply and close every window, drop the batches, and read used_memory (the Redis is
    the bench's own and empty)."""
    settings = window_from_env(Env({}))
    keys = Keys(NAMESPACE)

    async def fill() -> None:
        store_client = connect(url, timeout_s=10)
        try:
            store = WindowStore(store_client, keys, settings)
            await store.load_scripts()
            now_ms = 1000 * int((await store_client.time())[0])
            events = [
                (_event(c, n, now_ms), now_ms) for c in range(CONVERSATIONS) for n in range(MIDS)
            ]
            for start in range(0, len(events), CHUNK):
                await store.apply(events[start : start + CHUNK])
            while (await store.close_due(0, CHUNK, everything=True)).closed:
                pass
        finally:
            await store_client.aclose()

    before = int(client.info("memory")["used_memory"])
    run_async(fill)
    if client.zcard(keys.due(0)) != 0:
        raise BenchError("windows left open after closing everything")
    # Only the seen ids count here: drop the batches and each conversation's state hash.
    client.delete(keys.outbound(0))
    for key in client.scan_iter(match=keys.conversation_state_prefix(0) + "*", count=1000):
        client.delete(key)
    grown = int(client.info("memory")["used_memory"]) - before
    dedupe = Dedupe(grown / (CONVERSATIONS * MIDS), settings.dedupe_ttl_s)
    print(f"  {dedupe.line()}", flush=True)
    return dedupe
