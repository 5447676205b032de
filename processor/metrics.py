"""The processor's Prometheus metrics, in a registry passed in."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Close lateness from 1 ms: the closer wakes at the deadline, so lateness is timer jitter
# plus one script call; polling designs would show up in the 500 ms+ buckets.
LATENESS_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000)
MAX_KIND_LABELS = 100
"""Distinct (platform, kind) pairs a counter keeps; later ones are counted as OTHER_KIND."""
OTHER_KIND = "other"
MESSAGES_BUCKETS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89)


class WindowOverdue:
    """How far past its deadline the earliest open window is, from the closer's last look.

    Between looks the Redis clock is extrapolated with the local monotonic clock: a closer
    that stops looking (stuck, or Redis down) shows a growing value, not a stale zero.
    """

    def __init__(self, clock_s: Callable[[], float] = time.monotonic) -> None:
        self._clock_s = clock_s
        self._deadline_ms: int | None = None
        self._redis_now_ms = 0
        self._looked_at_s: float | None = None

    def looked(self, redis_now_ms: int, earliest_deadline_ms: int | None) -> None:
        """The closer read the Redis clock and the earliest deadline still open."""
        self._redis_now_ms = redis_now_ms
        self._deadline_ms = earliest_deadline_ms
        self._looked_at_s = self._clock_s()

    def learned(self, deadline_ms: int) -> None:
        """A local apply set this deadline (the closer may not have seen it yet)."""
        if self._deadline_ms is None or deadline_ms < self._deadline_ms:
            self._deadline_ms = deadline_ms

    def seconds(self) -> float:
        """Now (Redis clock, extrapolated) minus the earliest known deadline, at least 0."""
        if self._deadline_ms is None or self._looked_at_s is None:
            return 0.0
        now_ms = self._redis_now_ms + (self._clock_s() - self._looked_at_s) * 1000
        return max(0.0, (now_ms - self._deadline_ms) / 1000)


class ProcessorMetrics:
    """Counters, gauges and histograms of parsing, windows and batches."""

    def __init__(
        self, registry: CollectorRegistry, clock_s: Callable[[], float] = time.monotonic
    ) -> None:
        self.registry = registry
        self._event_children: dict[tuple[str, str], Counter] = {}
        self._ignored_children: dict[tuple[str, str], Counter] = {}
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
        self.batches_paused = Counter(
            "lull_processor_batches_paused",
            "Batches emitted while their conversation was paused (stamped paused: the bot "
            "never answers them)",
            registry=registry,
        )
        self.turns = Counter(
            "lull_processor_turns",
            "What the business side did, by platform and outcome: human_echo, smb_echo (a "
            "human wrote), own_echo (lull's own reply), echo_early (an echo of an unknown id "
            "while lull was sending: looked at again), thread_taken, thread_passed, standby "
            "(another app holds the thread), thread_released (passed back to lull's app)",
            ["platform", "outcome"],
            registry=registry,
        )
        self.pauses = Counter(
            "lull_processor_pauses_started",
            "Pauses started (the conversation was not paused before), by reason",
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
        self._failure_children: dict[tuple[str, str, str], Counter] = {}
        self.delivery_failures = Counter(
            "lull_processor_delivery_failures",
            "Replies the platform accepted and later reported undelivered (WhatsApp failed "
            "statuses), each counted once, by error code and whether lull matched the message "
            "to a conversation",
            ["platform", "code", "matched"],
            registry=registry,
        )
        self.window_overdue = WindowOverdue(clock_s)
        Gauge(
            "lull_processor_window_overdue_seconds",
            "How far past its deadline the earliest open window is (0: none overdue); grows "
            "while this replica's closer cannot close",
            registry=registry,
        ).set_function(self.window_overdue.seconds)
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
            child = self.events.labels(platform, self._bounded(self._event_children, kind))
            self._event_children[key] = child
        return child

    def ignored_counter(self, platform: str, kind: str) -> Counter:
        """The ignored counter child of (platform, kind), looked up once per pair."""
        key = (platform, kind)
        child = self._ignored_children.get(key)
        if child is None:
            child = self.ignored.labels(platform, self._bounded(self._ignored_children, kind))
            self._ignored_children[key] = child
        return child

    def failure_counter(self, platform: str, code: int | None, matched: bool) -> Counter:
        """The delivery failures counter child of (platform, code, matched)."""
        key = (platform, "none" if code is None else str(code), "yes" if matched else "no")
        child = self._failure_children.get(key)
        if child is None:
            # Codes come from the bodies too: bounded like the kinds.
            bounded = key[1] if len(self._failure_children) < MAX_KIND_LABELS else OTHER_KIND
            child = self.delivery_failures.labels(key[0], bounded, key[2])
            self._failure_children[key] = child
        return child

    @staticmethod
    def _bounded(children: dict[tuple[str, str], Counter], kind: str) -> str:
        # Kinds come from the bodies (WhatsApp's "type", unknown objects): a signed body can
        # name any, and every new label value is a new time series kept forever.
        return kind if len(children) < MAX_KIND_LABELS else OTHER_KIND
