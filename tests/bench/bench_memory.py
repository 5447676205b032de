"""Redis memory per open window: 100,000 windows of 3 short messages, applied by WindowStore.

INFO used_memory is read on an emptied Redis with the scripts loaded, then again after
every event is applied and the applying connections are closed (their buffers gone), so
the difference is the windows: conversation keys and the due zset. The message bytes are
what the script stores verbatim per message (the JSON of mid, kind, text, attachments
and raw); the rest is per-window overhead: key, header, record framing, zset entry.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass

import orjson
from redis import Redis

from lull.common.env import Env
from lull.common.events import Event
from lull.common.redis_conn import connect
from lull.common.store.keys import Keys
from lull.common.store.windows import ADDED, OPENED, WindowStore
from lull.processor.settings import WindowSettings, window_from_env
from tests.bench.bench_support import PAGE_ID, run_async
from tests.bench.config import BenchConfig
from tests.bench.procs import ROOT, BenchError, pinned, python_module, stop

NAMESPACE = "mem"
KEYS = Keys(NAMESPACE)
CONVERSATIONS = 100_000
MESSAGES = 3
TEXTS = ("hi", "I have a question", "about my order")
PIPELINE = 1_000
# Concurrent pipelines per child, each on its own connection: Redis runs one while Python
# builds the next.
WORKERS = 3
SAMPLE_KEYS = 200
FILL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Memory:
    """used_memory growth per window, and how much of it the messages themselves are."""

    windows: int
    used_bytes: int
    message_bytes: int
    value_bytes: float
    """Mean STRLEN of a window's string value (header, framing and messages)."""
    key_usage_bytes: float
    """Mean MEMORY USAGE of a window's key (key, value and allocator rounding)."""
    elapsed_s: float

    @property
    def per_window(self) -> float:
        """used_memory growth per window."""
        return self.used_bytes / self.windows

    @property
    def beyond_messages(self) -> float:
        """Per window, what is not message bytes."""
        return (self.used_bytes - self.message_bytes) / self.windows


def _event(conversation: int, n: int, now_ms: int) -> Event:
    user = f"7{conversation:015d}"
    mid = f"m_{conversation:08d}_{n}"
    text = TEXTS[n]
    raw = {
        "sender": {"id": user},
        "recipient": {"id": PAGE_ID},
        "timestamp": now_ms,
        "message": {"mid": mid, "text": text},
    }
    return Event("messenger", PAGE_ID, user, mid, now_ms, "text", text=text, raw=raw)


def _stored_bytes(event: Event) -> int:
    """What window_apply.lua stores verbatim of one message."""
    return sum(
        len(orjson.dumps(part))
        for part in (event.mid, event.text, event.raw, event.attachments, event.kind)
    )


def measure_memory(config: BenchConfig, url: str, client: Redis) -> Memory:
    """Fill CONVERSATIONS windows of MESSAGES messages each and read used_memory around it."""

    async def load_scripts() -> None:
        store_client = connect(url, timeout_s=10)
        try:
            await WindowStore(store_client, KEYS, _settings()).load_scripts()
        finally:
            await store_client.aclose()

    run_async(load_scripts)
    before = _used_memory(client)
    elapsed, message_bytes = _fill_in_children(config, url)
    used = _used_memory(client) - before
    open_windows = int(client.zcard(KEYS.due(0)))
    if open_windows != CONVERSATIONS:
        raise BenchError(f"{open_windows} windows open, {CONVERSATIONS} expected")
    value_bytes, usage = _sample_keys(client)
    memory = Memory(CONVERSATIONS, used, message_bytes, value_bytes, usage, elapsed)
    print(
        f"  memory: {CONVERSATIONS:,} windows of {MESSAGES} messages ({CONVERSATIONS * MESSAGES:,} "
        f"applies in {elapsed:.1f} s): used_memory +{used / 1e6:.1f} MB = "
        f"{memory.per_window:.0f} B/window, of which messages "
        f"{message_bytes / CONVERSATIONS:.0f} B",
        f"    per window: value {value_bytes:.0f} B (STRLEN), key {usage:.0f} B (MEMORY USAGE), "
        f"due zset and tables {(memory.per_window - usage):.0f} B (the rest)",
        sep="\n",
        flush=True,
    )
    return memory


def _settings() -> WindowSettings:
    # Windows an hour long: none falls due while we measure.
    hour_ms = "3600000"
    return window_from_env(Env({"LULL_WINDOW_MS": hour_ms, "LULL_MAX_WAIT_MS": hour_ms}))


def _fill_in_children(config: BenchConfig, url: str) -> tuple[float, int]:
    """Apply every event from one child per core (Python, not Redis, is the bottleneck);
    returns (seconds, message bytes)."""
    cpus = sorted({config.server_cpu, config.loadgen_cpu})
    share = -(-CONVERSATIONS // len(cpus))
    now_ms = str(int(time.time() * 1000))
    children: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    try:
        for index, cpu in enumerate(cpus):
            first = index * share
            argv = [
                *python_module("tests.bench.bench_memory"),
                url, str(first), str(min(share, CONVERSATIONS - first)), now_ms,
            ]  # fmt: skip
            children.append(subprocess.Popen(pinned(cpu, argv), cwd=ROOT, stdout=subprocess.PIPE))
        message_bytes = 0
        for child in children:
            try:
                out, _ = child.communicate(timeout=FILL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise BenchError(f"the memory fill took over {FILL_TIMEOUT_S:g} s") from None
            if child.returncode != 0:
                raise BenchError(f"a memory fill child exited with {child.returncode}")
            message_bytes += int(orjson.loads(out.splitlines()[-1])["message_bytes"])
        return time.monotonic() - started, message_bytes
    finally:
        for child in children:
            stop(child)


async def _fill(url: str, first: int, count: int, now_ms: int) -> int:
    """Apply MESSAGES events to each of count conversations; returns the message bytes."""
    client = connect(url, timeout_s=10)
    store = WindowStore(client, KEYS, _settings())
    per_pipeline = PIPELINE // MESSAGES
    starts = list(reversed(range(first, first + count, per_pipeline)))
    message_bytes = 0

    async def worker() -> None:
        nonlocal message_bytes
        while starts:
            low = starts.pop()
            high = min(first + count, low + per_pipeline)
            # Message n of every conversation before n + 1 of any: window order is kept.
            events = [
                (_event(c, n, now_ms), now_ms) for n in range(MESSAGES) for c in range(low, high)
            ]
            message_bytes += sum(_stored_bytes(event) for event, _ in events)
            results = await store.apply(events)
            if any(r.status not in (ADDED, OPENED) for r in results):
                raise BenchError("an event was not added to its window")

    try:
        async with asyncio.timeout(FILL_TIMEOUT_S):
            async with asyncio.TaskGroup() as group:
                for _ in range(WORKERS):
                    group.create_task(worker())
    finally:
        await client.aclose()
    return message_bytes


def _used_memory(client: Redis) -> int:
    info = client.info("memory")
    return int(info["used_memory"])


def _sample_keys(client: Redis) -> tuple[float, float]:
    """Mean STRLEN and MEMORY USAGE of SAMPLE_KEYS window keys."""
    names = [KEYS.conversation(f"messenger:{PAGE_ID}:7{c:015d}") for c in range(SAMPLE_KEYS)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.strlen(name)
        pipe.memory_usage(name, samples=0)
    values = pipe.execute()
    return (
        sum(int(v) for v in values[0::2]) / SAMPLE_KEYS,
        sum(int(v) for v in values[1::2]) / SAMPLE_KEYS,
    )


def main(argv: list[str]) -> int:
    """Child: `python -m tests.bench.bench_memory URL FIRST COUNT NOW_MS` fills its share."""
    url, first, count, now_ms = argv
    message_bytes = run_async(lambda: _fill(url, int(first), int(count), int(now_ms)))
    print(orjson.dumps({"message_bytes": message_bytes}).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
