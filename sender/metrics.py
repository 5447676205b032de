"""The sender's Prometheus metrics, in a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from lull.common.metrics import LATENCY_BUCKETS_S

AGE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class SenderMetrics:
    """ConcurrentDeliveries, handler and Graph API latency, rate-limit waits, batch age."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            "lull_sender_deliveries",
            "Batch outcomes: sent, no_reply, superseded, handoff (replies sent, then paused), "
            "paused (a human has the conversation: no bot call), duplicate, waiting (for seq "
            "n-1), retried, dead, window_closed (Meta's 24-hour window closed: nothing sent)",
            ["outcome"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "lull_sender_handler_seconds",
            "Handler (bot) call latency",
            ["result"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.graph_seconds = Histogram(
            "lull_sender_graph_seconds",
            "Graph API send latency by HTTP status and error code",
            ["status", "code"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.rate_waits = Counter(
            "lull_sender_rate_limit_waits",
            "Batches or sends postponed by a rate limit, by scope: user, user_send, account "
            "(lull's own limits), meta (Meta throttled a send)",
            ["scope"],
            registry=registry,
        )
        self.rate_late = Counter(
            "lull_sender_rate_limit_late",
            "Sends held back at the last moment because the limit's last PERIOD already held "
            "its count (units used late after a stall, then bunched), by scope: user, "
            "user_send, account",
            ["scope"],
            registry=registry,
        )
        self.presence = Counter(
            "lull_sender_presence",
            "Read receipts and typing calls (sender/presence/calls.py) by action (read, "
            "read_typing, mark_seen, typing_on, typing_off) and outcome: sent, dropped_rate "
            "(no slot free under LULL_RATE_GLOBAL at once), failed",
            ["action", "outcome"],
            registry=registry,
        )
        self.batch_age = Histogram(
            "lull_sender_batch_age_seconds",
            "From the batch's closed_at to its last reply accepted by the Graph API",
            buckets=AGE_BUCKETS_S,
            registry=registry,
        )
        self.handoffs = Counter(
            "lull_sender_handoffs",
            "The bot's handoffs by platform and outcome: paused (and the webhook, if any, "
            "told), notify_failed (paused; the webhook gave up), thread_control_passed, "
            "thread_control_refused (Meta refused it for good; paused all the same)",
            ["platform", "outcome"],
            registry=registry,
        )
        self.handoff_notify_failures = Counter(
            "lull_sender_handoff_notify_failures",
            "Failed POSTs to LULL_HANDOFF_WEBHOOK (each attempt; retried up to "
            "LULL_HANDOFF_WEBHOOK_ATTEMPTS)",
            registry=registry,
        )
