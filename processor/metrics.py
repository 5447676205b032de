"""The processor's Prometheus metrics, in a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Close lateness from 1 ms: the closer wakes at the deadline, so lateness is timer jitter
# plus one script call; polling designs would show up in the 500 ms+ buckets.
LATENESS_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000)
MESSAGES_BUCKETS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89)


class ProcessorMetrics:
    """Counters, gauges and histograms of parsing, windows and batches."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._event_children: dict[tuple[str, str], Counter] = {}
        self.events = Counter(
            "lull_processor_events",
            "User message events parsed, by platform and kind",
            ["platform", "kind"],
            registry=registry,
        )
        self.ignored = Counter(
            "lull_processor_ignored",
            "Items that are not user input (echo, read, delivery, status, ...), or unknown",
            ["platform", "kind"],
            registry=registry,
        )
        self.applied = Counter(
            "lull_processor_applied",
            "Results of applying events to windows (duplicate = dropped by message id)",
            ["result"],
            registry=registry,
        )
        self.windows_open = Gauge(
            "lull_processor_windows_open", "Open windows, all shards", registry=registry
        )
        self.batches = Counter(
            "lull_processor_batches",
            "Batches emitted, by close reason",
            ["reason"],
            registry=registry,
        )
        self.emptied = Counter(
            "lull_processor_windows_emptied",
            "Windows closed with nothing to emit (every message unsent)",
            registry=registry,
        )
        self.batch_messages = Histogram(
            "lull_processor_batch_messages",
            "Messages per emitted batch",
            buckets=MESSAGES_BUCKETS,
            registry=registry,
        )
        self.close_lateness_ms = Histogram(
            "lull_processor_close_lateness_ms",
            "closed_at - deadline, milliseconds (Redis clock)",
            buckets=LATENESS_BUCKETS_MS,
            registry=registry,
        )

    def event_counter(self, platform: str, kind: str) -> Counter:
        """The events counter child of (platform, kind), looked up once per pair."""
        key = (platform, kind)
        child = self._event_children.get(key)
        if child is None:
            child = self._event_children[key] = self.events.labels(platform, kind)
        return child
