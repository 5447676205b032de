"""Redis bytes per finished conversation: while its state lives, and after it expired.

CONVERSATIONS users each write one message; the real processor (in this process) closes
their windows and the real sender (echo bot, `lull fake-graph`) answers them. Then the
namespace's keys are summed with MEMORY USAGE (SCAN MATCH on the namespace, samples 0:
every element counted), leaving out the streams, which are shared and trimmed once every
group has acknowledged (they do not grow with conversations). The conversation TTL and
the dedupe TTL are cut to TTL_S (settings built from the environment, then replaced: the
environment refuses a TTL below the retry and dedupe horizons), and the phase waits on the
Redis clock, bounded, until the keys are gone. Target: 0 bytes after expiry.

For comparison, the same conversations in 0.1's layout, measured the same way: a field
in the shard-wide seq and delivered hashes each (never removed) and the same history list
(expired after 0.1's LULL_HISTORY_TTL_S, 24 h; its window's seen ids after 0.1's 48 h).
There is no 0.1 code in this run: the layout is written from what 0.1's scripts wrote.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import orjson
import redis.asyncio as aioredis
from redis import Redis

from lull.common.log import configure
from lull.common.store.keys import Keys
from lull.common.store.legacy import LegacyKeys
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings
from lull.sender.app import Sender
from lull.sender.settings import SenderSettings
from tests.bench.bench_sender_support import fake_graph
from tests.bench.bench_support import (
    PAGE_ID,
    dedicated_redis,
    describe_cores,
    messenger_body,
    redis_now_ms,
    run_async,
    verdict,
)
from tests.bench.config import BenchConfig
from tests.bench.procs import BenchError
from tests.bench.report import Report

NAMESPACE = "life"
OLD_NAMESPACE = "life01"
CONVERSATIONS = 1_000
# Longer than processing every conversation takes on a busy machine (a state that expired
# before the sender finished its batch would leave the batch unanswered, as the settings'
# horizon check says), short enough to wait for.
TTL_S = 20
EXPIRY_WAIT_S = TTL_S + 30.0
RUN_TIMEOUT_S = 120.0
SCAN_COUNT = 1_000


@dataclass(frozen=True)
class Lifetime:
    """Bytes per finished conversation, in each layout."""

    live_bytes: float
    by_kind: dict[str, float]
    """Live bytes per conversation by key: state hash, history, window's seen ids, the last
    batches' outcomes, the mids of the replies sent."""
    expired_bytes: float
    expired_after_s: float
    old_live_bytes: float
    old_expired_bytes: float

    def lines(self) -> list[str]:
        """The report's lines."""
        return [
            f"conversation state, {CONVERSATIONS:,} finished conversations, MEMORY USAGE of the "
            f"namespace's keys but the streams: live {self.live_bytes:.0f} B/conversation, "
            f"after expiry ({TTL_S} s TTL, all gone {self.expired_after_s:.1f} s after the run's "
            f"last write) {self.expired_bytes:.0f} B",
            "  live, by key: "
            + ", ".join(f"{kind} {size:.0f} B" for kind, size in self.by_kind.items()),
            f"  0.1's layout, same conversations: live {self.old_live_bytes:.0f} "
            f"B/conversation, after its history expired {self.old_expired_bytes:.0f} B, kept "
            "for ever (seq and delivered hash fields)",
        ]


def _message_bodies() -> list[bytes]:
    now_ms = int(time.time() * 1000)
    return [
        messenger_body([f"7{n:015d}"], [f"m_life_{n}"], now_ms, "where is my order?")
        for n in range(CONVERSATIONS)
    ]


async def _finish_conversations(url: str, graph_port: int) -> None:
    """Ingest (as ingest stores it), process and answer one message per conversation."""
    env = {
        "LULL_REDIS_URL": url,
        "LULL_NAMESPACE": NAMESPACE,
        "LULL_WINDOW_MS": "1",
        "LULL_MAX_WAIT_MS": "1",
        "LULL_HANDLER": "echo",
        "LULL_GRAPH_API_BASE": f"http://127.0.0.1:{graph_port}",
        "LULL_ACCESS_TOKENS": orjson.dumps({PAGE_ID: "bench-token"}).decode(),
        "LULL_RATE_GLOBAL": "off",
        "LULL_RATE_PER_USER": "off",
        "LULL_SENDER_METRICS_PORT": "0",
    }
    processor_settings = ProcessorSettings.from_env(env)
    window = replace(processor_settings.window, dedupe_ttl_s=TTL_S, conversation_ttl_s=TTL_S)
    # The mids the sender remembers (WhatsApp failures, Messenger echoes) expire on their own
    # LULL_SENT_MESSAGE_TTL_S (24 h by default, below the conversation's 8 days): cut too.
    sender_settings = replace(
        SenderSettings.from_env(env), conversation_ttl_s=TTL_S, sent_ids_ttl_s=TTL_S
    )
    client = aioredis.Redis.from_url(url, socket_timeout=10)
    keys = Keys(NAMESPACE)
    sender: Sender | None = None
    try:
        pipe = client.pipeline(transaction=False)
        for body in _message_bodies():
            pipe.xadd(keys.inbound(), {"body": body, "received_at": int(time.time() * 1000)})
        await pipe.execute()
        processor = Processor(client, replace(processor_settings, window=window))
        sender = await Sender.create(client, sender_settings)
        async with asyncio.timeout(RUN_TIMEOUT_S):
            emitted = 0
            while emitted < CONVERSATIONS:
                closed = await processor.drain()
                if closed == 0 and emitted < CONVERSATIONS:
                    await asyncio.sleep(0.01)  # windows 1 ms long: due at once
                emitted += closed
            await sender.drain()
    finally:
        if sender is not None:
            await sender.close()
        await client.aclose()


def _conversation_keys(client: Redis, namespace: str) -> list[bytes]:
    """Every key of the namespace but its streams."""
    found: list[bytes] = []
    for name in client.scan_iter(match=f"{namespace}:*", count=SCAN_COUNT):
        if client.type(name) != b"stream":
            found.append(name)
    return found


def _usage_bytes(client: Redis, names: list[bytes]) -> int:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)
    return sum(int(size or 0) for size in pipe.execute())


def _wait_for_expiry(client: Redis, last_write_ms: int) -> float:
    """Seconds on the Redis clock from the last write until no conversation key is left."""
    deadline_ms = last_write_ms + int(EXPIRY_WAIT_S * 1000)
    while _conversation_keys(client, NAMESPACE):
        now_ms = redis_now_ms(client)
        if now_ms > deadline_ms:
            raise BenchError(f"conversation keys still there {EXPIRY_WAIT_S:g} s after the TTL")
        time.sleep(0.2)
    return (redis_now_ms(client) - last_write_ms) / 1000


def _old_layout(client: Redis, live: list[bytes]) -> tuple[int, int]:
    """0.1's bytes for the same conversations: (live, after its history expired)."""
    keys, old = Keys(NAMESPACE), Keys(OLD_NAMESPACE)
    pipe = client.pipeline(transaction=False)
    for name in live:
        if not name.startswith(keys.history_prefix(0).encode()):
            continue
        conversation = name[len(keys.history_prefix(0)) :].decode()
        items = client.lrange(name, 0, -1)
        pipe.rpush(old.history(conversation), *items)
        pipe.hset(LegacyKeys.of(old, 0).seq, conversation, 1)
        pipe.hset(LegacyKeys.of(old, 0).delivered, conversation, 1)
    seen = keys.seen_prefix(0).encode()
    for name in live:
        dumped = client.dump(name)
        if name.startswith(seen) and dumped is not None:
            # The seen ids (0.1 kept them in the window key): the same value under that name.
            conversation = name[len(seen) :].decode()
            pipe.restore(old.conversation(conversation), 0, dumped)
    pipe.execute()
    old_live = _usage_bytes(client, _conversation_keys(client, OLD_NAMESPACE))
    kept = _usage_bytes(
        client, [LegacyKeys.of(old, 0).seq.encode(), LegacyKeys.of(old, 0).delivered.encode()]
    )
    return old_live, kept


def measure_lifetime(url: str, client: Redis, graph_port: int) -> Lifetime:
    """Finish CONVERSATIONS conversations, measure, let them expire, measure again."""
    configure("json", "warning", "bench")
    run_async(lambda: _finish_conversations(url, graph_port))
    last_write_ms = redis_now_ms(client)
    live = _conversation_keys(client, NAMESPACE)
    live_bytes = _usage_bytes(client, live)
    keys = Keys(NAMESPACE)
    kinds = {
        "state hash": keys.conversation_state_prefix(0),
        "history": keys.history_prefix(0),
        "seen ids": keys.seen_prefix(0),
        "last batches (lull conversation)": f"{keys.tag(0)}:o:",
        "sent mids (echoes, failures)": f"{keys.tag(0)}:sent:",
    }
    by_kind = {
        kind: _usage_bytes(client, [n for n in live if n.startswith(prefix.encode())])
        / CONVERSATIONS
        for kind, prefix in kinds.items()
    }
    states = sum(1 for name in live if b":cs:" in name)
    if states != CONVERSATIONS:
        raise BenchError(f"{states} conversation states, {CONVERSATIONS} expected")
    old_live, old_kept = _old_layout(client, live)
    expired_after_s = _wait_for_expiry(client, last_write_ms)
    expired_bytes = _usage_bytes(client, _conversation_keys(client, NAMESPACE))
    return Lifetime(
        live_bytes=live_bytes / CONVERSATIONS,
        by_kind=by_kind,
        expired_bytes=expired_bytes / CONVERSATIONS,
        expired_after_s=expired_after_s,
        old_live_bytes=old_live / CONVERSATIONS,
        old_expired_bytes=old_kept / CONVERSATIONS,
    )


def run(config: BenchConfig) -> Report:
    """`python -m tests.bench lifetime`: the conversation-state bytes phase alone."""
    describe_cores(
        "lifetime",
        config,
        "processor and sender (echo) in this script; fake Graph API and redis-server on "
        f"core {config.loadgen_cpu}",
    )
    with (
        dedicated_redis(config, "lull-bench-lifetime-") as (store, tmp),
        Redis.from_url(store.url, socket_timeout=10) as client,
        fake_graph(config, tmp) as (graph_port, _pid),
    ):
        lifetime = measure_lifetime(store.url, client, graph_port)
    lines = lifetime.lines()
    for line in lines:
        print(f"  {line}", flush=True)
    passed = lifetime.expired_bytes == 0
    return Report(
        "lifetime",
        [],
        [*lines, verdict(f"0 B per conversation after expiry (target 0): {passed}", passed)],
        passed,
    )
