"""Prometheus metrics of the consumer-group loop, registered in a registry passed in.

One ConsumerMetrics per registry: every series is labelled by group (and stream), so the
consumers of one process (say a processor and a sender in a test) can share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class ConsumerMetrics:
    """Counters and gauges the consumer loop updates."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.entries = Counter(
            "lull_consumer_entries",
            "Entries by what the loop did with them: acked, retried (held for a local retry), "
            "running (left to the handler in the background, held until it decides), "
            "dead (dead-lettered), claimed (taken from another consumer), gone (deleted from "
            "the stream before it was handled; acked and skipped)",
            ["group", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "lull_consumer_dead_letters",
            "Entries written to the dead-letter stream, by why: permanent (the handler said "
            "so) or max_deliveries",
            ["group", "reason_kind"],
            registry=r,
        )
        self.handler_errors = Counter(
            "lull_consumer_handler_errors",
            "Handler calls that raised or broke the handler contract; their entries are "
            "retried locally",
            ["group"],
            registry=r,
        )
        self.redis_errors = Counter(
            "lull_consumer_redis_errors",
            "Redis commands of the loop itself that failed, by operation",
            ["group", "op"],
            registry=r,
        )
        self.lag = Gauge(
            "lull_stream_lag",
            "Entries not yet delivered to the group (NaN when Redis cannot tell)",
            ["stream", "group"],
            registry=r,
        )
        self.pending = Gauge(
            "lull_stream_pending",
            "Entries delivered to the group and not yet acknowledged",
            ["stream", "group"],
            registry=r,
        )
        self.consumers = Gauge(
            "lull_stream_consumers",
            "Consumers the group has (XINFO GROUPS): live ones, and dead ones not expired yet "
            "(an idle consumer is removed only once it holds nothing)",
            ["stream", "group"],
            registry=r,
        )
