"""The consumer's claim pass, minus the handling: XAUTOCLAIM pages, sorted.

Run at start and every claim_interval_ms. A claimed entry is sorted three ways: deleted
from the stream (ack and skip), delivered more than max_deliveries times (dead-letter), or
to be handled like a fresh read, with its delivery count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lull.common.clock import monotonic_ms
from lull.common.consumer.config import ConsumerConfig
from lull.common.consumer.handler import Entry
from lull.common.consumer.retries import LocalRetries
from lull.common.redis_conn import RedisClient
from lull.common.store.streams import text

FIRST_CURSOR = "0-0"


@dataclass
class ClaimedPage:
    """What one XAUTOCLAIM call took over, sorted."""

    received_ms: float
    """When the claim answered: the entries' idle time was reset then."""
    handle: list[Entry] = field(default_factory=list)
    dead: list[tuple[Entry, str]] = field(default_factory=list)
    """(entry, reason) of entries past max_deliveries."""
    gone: list[str] = field(default_factory=list)
    """Ids deleted from the stream while pending."""


async def claim_page(
    client: RedisClient,
    config: ConsumerConfig,
    stream: str,
    cursor: str,
    held: LocalRetries,
) -> tuple[str, ClaimedPage]:
    """One XAUTOCLAIM from cursor; returns the next cursor (FIRST_CURSOR: done) and the page."""
    reply: Any = await client.xautoclaim(
        stream,
        config.group,
        config.consumer,
        config.claim_idle_ms,
        start_id=cursor,
        count=config.read_count,
    )
    page = ClaimedPage(received_ms=monotonic_ms())
    # Redis 7 lists entries deleted from the stream apart (and drops them from the PEL);
    # Redis 6.2 returns them with no fields. Either way: ack and skip, as watermill does.
    page.gone = [text(i) for i in (reply[2] if len(reply) > 2 else [])]
    fresh: list[tuple[str, dict[bytes, bytes]]] = []
    for raw_id, fields in reply[1]:
        entry_id = text(raw_id)
        if fields is None:
            page.gone.append(entry_id)
        elif (stream, entry_id) in held:
            # Our own held entry idled past claim_idle_ms; the claim touched it for us.
            held.touched((stream, entry_id), page.received_ms)
        else:
            fresh.append((entry_id, fields))
    counts = await delivery_counts(client, stream, config.group, [i for i, _ in fresh])
    for entry_id, fields in fresh:
        count = counts.get(entry_id)
        if count is None:
            continue  # acked since the claim: its late owner finished it after all
        entry = Entry(stream, entry_id, fields, count)
        if count > config.max_deliveries:
            page.dead.append((entry, f"max_deliveries exceeded ({count})"))
        else:
            page.handle.append(entry)
    return text(reply[0]), page


async def delivery_counts(
    client: RedisClient, stream: str, group: str, ids: list[str]
) -> dict[str, int]:
    """The PEL delivery counter of each id (absent when no longer pending)."""
    if not ids:
        return {}
    pipe = client.pipeline(transaction=False)
    for entry_id in ids:
        pipe.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)
    rows: list[Any] = await pipe.execute()
    return {text(row[0]["message_id"]): int(row[0]["times_delivered"]) for row in rows if row}
