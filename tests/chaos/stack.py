"""A lull stack of real processes on loopback: Redis (AOF, fsync always), ingest,
processors, senders and one fake Graph API per sender slot.

Each sender slot talks to its own fake Graph API, so every recorded send says which slot
made it: a resend after a SIGKILL can be traced to the killed slot. The bot (handler) is
not a child process: the test runs it (tests/chaos/bot.py) and passes its URL.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from lull.common.store.keys import Keys
from lull.dev.embedded_redis import EmbeddedRedis, free_port
from tests.chaos.service import Service, lull_argv

# A replica starts in about a second; a CI machine under load has taken over 20 s.
READY_TIMEOUT_S = 60.0
VERIFY_TOKEN = "chaos-verify-token"
APP_SECRET = "chaos-app-secret"
GRAPH_TOKEN = "chaos-graph-token"
ADMIN_TOKEN = "chaos-admin-token-0123456789"
API_TOKEN = "chaos-api-token-0123456789ab"


@dataclass(frozen=True)
class StackConfig:
    """Replica counts and the timing settings every service gets."""

    processors: int = 3
    senders: int = 2
    shards: int = 2
    window_ms: int = 300
    max_wait_ms: int = 2000
    claim_idle_ms: int = 1500
    claim_interval_ms: int = 300
    handler_timeout_ms: int = 1000
    graph_timeout_ms: int = 2000
    human_pause_ms: int = 1500
    """Short, so that the humans' pauses (tests/chaos/humans.py) come and go in the run."""
    human_pause_max_ms: int = 6000
    extra_env: dict[str, str] = field(default_factory=dict)

    def service_env(self, redis_url: str, namespace: str, handler_url: str) -> dict[str, str]:
        """The settings every lull service of the stack shares (ports come per slot)."""
        return {
            "LULL_REDIS_URL": redis_url,
            "LULL_NAMESPACE": namespace,
            "LULL_SHARDS": str(self.shards),
            "LULL_LOG_FORMAT": "json",
            "LULL_LOG_LEVEL": "info",
            "LULL_VERIFY_TOKEN": VERIFY_TOKEN,
            "LULL_APP_SECRET": APP_SECRET,
            "LULL_INGEST_REDIS_TIMEOUT_MS": "1000",
            "LULL_WINDOW_MS": str(self.window_ms),
            "LULL_MAX_WAIT_MS": str(self.max_wait_ms),
            "LULL_CLAIM_IDLE_MS": str(self.claim_idle_ms),
            "LULL_CLAIM_INTERVAL_MS": str(self.claim_interval_ms),
            # Chaos claims an entry again after every kill or stall of its holder: a healthy
            # entry must never look poisonous.
            "LULL_MAX_DELIVERIES": "100",
            "LULL_HANDLER": handler_url,
            "LULL_HANDLER_TIMEOUT_MS": str(self.handler_timeout_ms),
            "LULL_GRAPH_TIMEOUT_MS": str(self.graph_timeout_ms),
            "LULL_ACCESS_TOKENS": orjson.dumps({"*": GRAPH_TOKEN}).decode(),
            "LULL_RATE_GLOBAL": "5000/s",
            "LULL_RATE_PER_USER": "100/s:100",
            "LULL_SEND_RATE_PER_USER": "off",
            # Throttling bursts must be retried through, never dead-lettered.
            "LULL_SEND_MAX_ATTEMPTS": "100",
            "LULL_SEND_BACKOFF_BASE_MS": "50",
            "LULL_SEND_BACKOFF_MAX_MS": "500",
            "LULL_HUMAN_PAUSE_MS": str(self.human_pause_ms),
            "LULL_HUMAN_PAUSE_MAX_MS": str(self.human_pause_max_ms),
            **self.extra_env,
        }


class Stack:
    """Start with `await start()`, always `stop()`; slots are public for chaos to act on."""

    def __init__(self, workdir: Path, config: StackConfig, handler_url: str) -> None:
        self.workdir = workdir
        self.config = config
        self.namespace = "chaos" + secrets.token_hex(4)
        self.keys = Keys(self.namespace, config.shards)
        self.redis = EmbeddedRedis(
            workdir / "redis", appendonly=True, extra_args=("--appendfsync", "always")
        )
        self.redis_outages: list[tuple[float, float]] = []
        """(down, up) wall-clock seconds of every Redis restart."""
        self._handler_url = handler_url
        self.ingest_port = free_port()
        self.admin_port = free_port()
        self.graphs = [
            self._slot(f"graph{n}", lull_argv("fake-graph", "--port", str(port)), {}, port)
            for n, port in enumerate(free_port() for _ in range(config.senders))
        ]
        self.ingest: Service | None = None
        self.processors: list[Service] = []
        self.senders: list[Service] = []

    @property
    def webhook_url(self) -> str:
        """Where the simulated Meta posts."""
        return f"http://127.0.0.1:{self.ingest_port}/webhook"

    @property
    def send_api_url(self) -> str:
        """The send API's base URL (ingest's admin port)."""
        return f"http://127.0.0.1:{self.admin_port}"

    def graph_url(self, slot: int) -> str:
        """The fake Graph API sender slot `slot` sends to."""
        return f"http://127.0.0.1:{self.graphs[slot].port}"

    def services(self) -> list[Service]:
        """Every lull service slot (the fake Graph APIs excluded)."""
        head = [self.ingest] if self.ingest is not None else []
        return [*head, *self.processors, *self.senders]

    def start_redis(self) -> str:
        """Start the stack's own Redis (before the services, so observers can attach)."""
        self.redis.start()
        return self.redis.url

    async def start(self) -> None:
        """Start Redis if needed, then every slot, and wait until each one serves."""
        if self.redis.process is None:
            self.start_redis()
        base = self.config.service_env(self.redis.url, self.namespace, self._handler_url)
        metrics = free_port()
        self.ingest = self._slot(
            "ingest",
            lull_argv("ingest"),
            {**base, "LULL_INGEST_PORT": str(self.ingest_port),
             "LULL_INGEST_METRICS_PORT": str(metrics),
             # The send API (tests/chaos/api_sends.py), on the admin port.
             "LULL_ADMIN_TOKEN": ADMIN_TOKEN, "LULL_API_TOKEN": API_TOKEN,
             "LULL_ADMIN_PORT": str(self.admin_port)},
            self.ingest_port,
        )  # fmt: skip
        for n in range(self.config.processors):
            port = free_port()
            env = {**base, "LULL_PROCESSOR_METRICS_PORT": str(port)}
            self.processors.append(self._slot(f"processor{n}", lull_argv("processor"), env, port))
        for n in range(self.config.senders):
            port = free_port()
            env = {**base, "LULL_SENDER_METRICS_PORT": str(port),
                   "LULL_GRAPH_API_BASE": self.graph_url(n)}  # fmt: skip
            self.senders.append(self._slot(f"sender{n}", lull_argv("sender"), env, port))
        slots = [*self.graphs, *self.services()]
        for slot in slots:
            slot.start()
        await asyncio.gather(*(slot.wait_ready(READY_TIMEOUT_S) for slot in slots))

    def kill_redis(self, *, hard: bool) -> float:
        """Stop Redis: SIGKILL (hard; AOF fsync always keeps every confirmed write) or
        SIGTERM; returns the wall-clock time it went down."""
        down = time.time()
        process = self.redis.process
        assert process is not None
        if hard:
            process.kill()
            process.wait(10)
        else:
            self.redis.stop()
        return down

    async def restart_redis(self, *, hard: bool, down_s: float) -> None:
        """Take Redis down for down_s, then start it again on the same port and AOF."""
        down = self.kill_redis(hard=hard)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.redis.start)
        self.redis_outages.append((down, time.time()))

    def check(self) -> None:
        """Record crashes of every slot (processes that ended without being killed)."""
        for slot in [*self.graphs, *self.services()]:
            slot.check()

    def crashes(self) -> dict[str, list[int]]:
        """Exit codes of unexpected exits, per slot name."""
        self.check()
        found = {s.name: s.crashes for s in [*self.graphs, *self.services()] if s.crashes}
        return found

    def heal(self) -> None:
        """Continue every stopped process and restart every dead one."""
        self.check()
        for slot in [*self.graphs, *self.services()]:
            if slot.stopped:
                slot.thaw()
            if not slot.alive():
                slot.start()

    def stop(self) -> None:
        """SIGTERM every process, then stop Redis."""
        for slot in reversed([*self.graphs, *self.services()]):
            slot.terminate()
        self.redis.stop()

    def log_tails(self) -> str:
        """The end of every slot's log, for failure messages."""
        return "\n".join(
            f"===== {s.name}\n{s.log_tail()}" for s in [*self.services(), *self.graphs]
        )

    def _slot(self, name: str, argv: list[str], env: dict[str, str], port: int) -> Service:
        return Service(name, argv, env, self.workdir / f"{name}.log", port)
