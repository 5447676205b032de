"""What the sender bench phases share: batches on the outbound stream, a sender child, the
fake Graph API's record."""

from __future__ import annotations

import contextlib
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from redis import Redis
from redis.client import Pipeline

from lull.common.store.keys import Keys
from lull.dev.embedded_redis import free_port
from tests.bench.config import BenchConfig
from tests.bench.procs import BenchError, pinned, python_module, serving

ACCOUNT = "p1"
TEXT = "hello there"
PREFILL_BATCH = 2_000
POLL_S = 0.02


def batch(
    user: str, seq: int, closed_at_ms: int | None = None, account: str = ACCOUNT
) -> dict[str, Any]:
    """A one-message Messenger batch as the processor's close script writes it, the user's
    message written at closed_at_ms (default now: inside Meta's 24-hour window, which the
    sender keeps)."""
    if closed_at_ms is None:
        closed_at_ms = int(time.time() * 1000)
    conversation = f"messenger:{account}:{user}"
    mid = f"m_{user}_{seq}"
    message = {
        "mid": mid, "event_time": closed_at_ms, "received_at": closed_at_ms, "kind": "text",
        "text": TEXT, "attachments": [], "raw": {"mid": mid},
    }  # fmt: skip
    return {
        "batch_id": f"{conversation}:{seq}", "seq": seq, "platform": "messenger",
        "account_id": account, "user_id": user, "conversation": conversation,
        "messages": [message], "text": TEXT, "first_event_time": closed_at_ms,
        "last_event_time": closed_at_ms, "opened_at": closed_at_ms, "closed_at": closed_at_ms,
        "close_reason": "gap",
    }  # fmt: skip


def emit(pipe: Pipeline, keys: Keys, found: dict[str, Any]) -> None:
    """Queue one batch on its outbound stream and its seq, as the close script does (a life
    whose seq starts at 0)."""
    conversation = found["conversation"]
    state = keys.conversation_state(conversation)
    pipe.xadd(keys.outbound(keys.shard_of(conversation)), {"batch": orjson.dumps(found)})
    pipe.hsetnx(state, "delivered", 0)
    pipe.hset(state, "seq", found["seq"])


def prefill(client: Redis, keys: Keys, batches: Iterator[dict[str, Any]]) -> int:
    """Write every batch before the sender starts; returns how many."""
    count = 0
    pipe = client.pipeline(transaction=False)
    for found in batches:
        emit(pipe, keys, found)
        count += 1
        if len(pipe) >= PREFILL_BATCH:
            pipe.execute()
    pipe.execute()
    return count


def delivered(client: Redis, keys: Keys) -> int:
    """Batches the sender group finished: read and acknowledged (every phase sends one per
    conversation but D)."""
    done = 0
    for stream in keys.all_outbound():
        for group in client.xinfo_groups(stream) if client.exists(stream) else []:
            if group["name"] in (b"sender", "sender"):
                done += int(group["entries-read"] or 0) - int(group["pending"])
    return done


@contextlib.contextmanager
def sender(
    config: BenchConfig, url: str, namespace: str, graph_port: int, tmp: Path, **limits: str
) -> Iterator[int]:
    """A `python -m sender` child on the server core; yields its pid once it serves metrics.

    limits: rate_global, rate_per_user, send_rate_per_user, typing, read_receipts (default
    off), presence_after_ms (default 0), concurrency (default 64, the setting's own) and
    handler (default echo)."""
    port = free_port()
    env = {
        "LULL_REDIS_URL": url,
        "LULL_NAMESPACE": namespace,
        "LULL_HANDLER": limits.get("handler", "echo"),
        "LULL_GRAPH_API_BASE": f"http://127.0.0.1:{graph_port}",
        "LULL_ACCESS_TOKENS": orjson.dumps({"*": "bench-token"}).decode(),
        "LULL_RATE_GLOBAL": limits.get("rate_global", "off"),
        "LULL_RATE_PER_USER": limits.get("rate_per_user", "off"),
        "LULL_SEND_RATE_PER_USER": limits.get("send_rate_per_user", "off"),
        # Presence is measured in its own phase; the others measure replies alone.
        "LULL_TYPING": limits.get("typing", "off"),
        "LULL_READ_RECEIPTS": limits.get("read_receipts", "off"),
        "LULL_PRESENCE_AFTER_MS": limits.get("presence_after_ms", "0"),
        "LULL_SENDER_CONCURRENCY": limits.get("concurrency", "64"),
        "LULL_SENDER_METRICS_PORT": str(port),
        "LULL_LOG_FORMAT": "json",
        "LULL_LOG_LEVEL": "warning",
    }
    argv = pinned(config.server_cpu, python_module("lull.sender"))
    with serving(argv, env, port, tmp / f"sender-{namespace}.log") as process:
        yield process.pid


@contextlib.contextmanager
def fake_graph(config: BenchConfig, tmp: Path) -> Iterator[tuple[int, int]]:
    """`lull fake-graph` on the load generator's core; yields (port, pid)."""
    port = free_port()
    argv = pinned(
        config.loadgen_cpu, [*python_module("lull.cli"), "fake-graph", "--port", str(port)]
    )
    env = {"LULL_LOG_FORMAT": "json", "LULL_LOG_LEVEL": "warning"}
    with serving(argv, env, port, tmp / "fake-graph.log") as process:
        yield port, process.pid


def sent(graph_port: int) -> list[dict[str, Any]]:
    """Every request the fake accepted since it was last cleared."""
    found: list[dict[str, Any]] = orjson.loads(_control(graph_port, "GET"))
    return found


def clear_sent(graph_port: int) -> None:
    """Forget what the fake accepted."""
    _control(graph_port, "DELETE")


def presence(graph_port: int) -> list[dict[str, Any]]:
    """Every read receipt and typing call the fake accepted since it was last cleared."""
    found: list[dict[str, Any]] = orjson.loads(_control(graph_port, "GET", "/_presence"))
    return found


def clear_presence(graph_port: int) -> None:
    """Forget the presence calls the fake accepted."""
    _control(graph_port, "DELETE", "/_presence")


def _control(graph_port: int, method: str, path: str = "/_sent") -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{graph_port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  (our URL)
            body: bytes = response.read()
    except OSError as exc:
        raise BenchError(f"the fake Graph API did not answer {method} {path}: {exc}") from exc
    return body


def wait_delivered(
    client: Redis, keys: Keys, count: int, timeout_s: float
) -> list[tuple[float, int]]:
    """Poll until count conversations are delivered; returns (monotonic s, delivered) samples."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        done = delivered(client, keys)
        samples.append((time.monotonic(), done))
        if done >= count:
            return samples
        if time.monotonic() > deadline:
            raise BenchError(f"{done} of {count} batches delivered after {timeout_s:g} s")
        time.sleep(POLL_S)
