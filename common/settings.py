"""Settings every service shares; each service adds its own dataclass around these."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from lull.common.env import ConfigError, Env
from lull.common.redis_conn import describe
from lull.common.store.keys import MAX_INBOUND_PARTS, Keys

DEFAULT_NAMESPACE = "lull"
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_url(env: Env) -> str | None:
    value = env.raw("LULL_REDIS_URL")
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
        good = parts.scheme in REDIS_SCHEMES
    except ValueError:
        good = False
    if good:
        return value
    # The URL may carry a password: the error shows it without.
    env.report(
        ConfigError("LULL_REDIS_URL", describe(value), "a URL redis://, rediss:// or unix://")
    )
    return None


def _cluster_url(value: str) -> bool:
    # A cluster has one database (0) and no unix sockets between its nodes.
    parts = urlsplit(value)
    return parts.scheme in ("redis", "rediss") and parts.path in ("", "/", "/0")


def _namespace(value: str) -> str:
    # Braces would add a hash tag of their own and break the per-shard {s} tag.
    if any(ch in value for ch in "{} \t\n") or len(value) > 64:
        raise ValueError(value)
    return value


@dataclass(frozen=True)
class CommonSettings:
    """Redis, key namespace, sharding and logging, shared by ingest, processor and sender."""

    redis_url: str | None
    """None: the default local Redis (lull dev may start an embedded one)."""
    namespace: str
    shards: int
    log_format: str
    log_level: str
    redis_cluster: bool = False
    """LULL_REDIS_CLUSTER=1: redis_url names any node of a Redis Cluster."""
    inbound_shards: int = 1
    """LULL_INBOUND_SHARDS: the parts ingest writes the inbound stream to, by conversation."""
    inbound_drain: tuple[int, ...] = ()
    """LULL_INBOUND_DRAIN: former LULL_INBOUND_SHARDS values whose streams the processor
    still reads (and lull stats counts) until they are empty."""

    def keys(self) -> Keys:
        """The key names of this namespace, shard and inbound layout."""
        return Keys(self.namespace, self.shards, self.inbound_shards, self.inbound_drain)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CommonSettings:
        """Read and validate LULL_REDIS_URL, LULL_REDIS_CLUSTER, LULL_NAMESPACE, LULL_SHARDS
        and LULL_LOG_*; every problem at once (ConfigError), unknown LULL_* names included."""
        env = Env(os.environ if environ is None else environ, collect=True)
        settings = common_from_env(env)
        env.check()
        return settings

    @property
    def effective_redis_url(self) -> str:
        """The URL to connect to: the configured one, else the local default."""
        return self.redis_url or DEFAULT_REDIS_URL


def _drain(value: str) -> tuple[int, ...]:
    counts = tuple(int(part) for part in value.split(",") if part.strip())
    if any(not 1 <= count <= MAX_INBOUND_PARTS for count in counts):
        raise ValueError(value)
    return counts


def common_from_env(env: Env) -> CommonSettings:
    """CommonSettings from env, for a service's from_env (problems go to env)."""
    default_format = "console" if sys.stderr.isatty() else "json"
    redis_url = _redis_url(env)
    redis_cluster = env.flag("LULL_REDIS_CLUSTER", False)
    if redis_cluster and redis_url is not None and not _cluster_url(redis_url):
        env.report(
            ConfigError(
                "LULL_REDIS_URL",
                describe(redis_url),  # no password in the message
                "with LULL_REDIS_CLUSTER=1, a redis:// or rediss:// URL of one node, database 0",
            )
        )
    return CommonSettings(
        redis_url=redis_url,
        redis_cluster=redis_cluster,
        namespace=env.parsed(
            "LULL_NAMESPACE",
            DEFAULT_NAMESPACE,
            _namespace,
            "up to 64 characters without braces or spaces",
        ),
        shards=env.integer("LULL_SHARDS", 1, minimum=1, maximum=16384),
        inbound_shards=env.integer("LULL_INBOUND_SHARDS", 1, minimum=1, maximum=MAX_INBOUND_PARTS),
        inbound_drain=env.parsed(
            "LULL_INBOUND_DRAIN",
            (),
            _drain,
            f"former LULL_INBOUND_SHARDS values, comma-separated, each 1 to {MAX_INBOUND_PARTS}",
        ),
        log_format=env.choice("LULL_LOG_FORMAT", default_format, LOG_FORMATS),
        log_level=env.choice("LULL_LOG_LEVEL", "info", LOG_LEVELS),
    )


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# What `lull dev` signs with and `lull simulate` signs with when LULL_APP_SECRET is unset.
DEV_APP_SECRET = "lull-dev-app-secret"  # noqa: S105  (a published dev default, never production)


@dataclass(frozen=True)
class GroupSettings:
    """Consumer-group recovery knobs shared by processor and sender."""

    claim_interval_ms: int
    claim_idle_ms: int
    max_deliveries: int


def group_from_env(env: Env) -> GroupSettings:
    """LULL_CLAIM_INTERVAL_MS, LULL_CLAIM_IDLE_MS, LULL_MAX_DELIVERIES."""
    return GroupSettings(
        claim_interval_ms=env.integer("LULL_CLAIM_INTERVAL_MS", 5000, minimum=10),
        claim_idle_ms=env.integer("LULL_CLAIM_IDLE_MS", 30_000, minimum=10),
        max_deliveries=env.integer("LULL_MAX_DELIVERIES", 5, minimum=1, maximum=1000),
    )
