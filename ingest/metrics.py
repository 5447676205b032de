"""Ingest's Prometheus metrics, in a registry of their own."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from lull.common.metrics import BYTES_BUCKETS, LATENCY_BUCKETS_S


@dataclass
class IngestMetrics:
    """Counters and histograms ingest updates per request."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self._request_children: dict[tuple[str, int], Counter] = {}
        self.requests = Counter(
            "lull_ingest_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.signature_failures = Counter(
            "lull_ingest_signature_failures",
            "Webhook POSTs refused for their signature",
            ["reason"],
            registry=r,
        )
        self.rejected = Counter(
            "lull_ingest_rejected", "Webhook POSTs refused for their body", ["reason"], registry=r
        )
        self.body_bytes = Histogram(
            "lull_ingest_body_bytes",
            "Size of accepted webhook bodies",
            buckets=BYTES_BUCKETS,
            registry=r,
        )
        self.store_seconds = Histogram(
            "lull_ingest_store_seconds",
            "Time from request to Redis confirming its XADD",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.redis_errors = Counter(
            "lull_ingest_redis_errors",
            "Requests answered 503 because Redis failed or was slow",
            registry=r,
        )

    def request_counter(self, route: str, status: int) -> Counter:
        """The requests counter child of (route, status), looked up once per pair."""
        key = (route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, str(status))
        return child
