"""Every LULL_* variable lull knows, in one place, and the typo check that uses them.

Operators keep one env file for all services (deploy/k8s/config.yaml, docker-compose), so
a variable is known when ANY service reads it: ingest must not refuse the sender's
LULL_HANDLER. A LULL_* name (any case) outside this list is a mistake we can name at start
(`LULL_WINDOW_SM`, `lull_window_ms`) instead of silently running on a default.

Adding a variable is one line below; tests/common/test_variables.py fails until the name a
settings module reads is listed here (and when a listed name is no longer read anywhere).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

PREFIX = "LULL_"

SERVICE_VARIABLES = frozenset(
    {
        # common: every service
        "LULL_REDIS_URL",
        "LULL_REDIS_CLUSTER",
        "LULL_NAMESPACE",
        "LULL_SHARDS",
        "LULL_INBOUND_SHARDS",
        "LULL_INBOUND_DRAIN",
        "LULL_LOG_FORMAT",
        "LULL_LOG_LEVEL",
        "LULL_METRICS_HOST",
        # the accounts file: per-account settings (processor, sender, ingest's pause times)
        "LULL_ACCOUNTS",
        "LULL_ACCOUNTS_STRICT",
        # ingest
        "LULL_INGEST_HOST",
        "LULL_INGEST_PORT",
        "LULL_INGEST_METRICS_PORT",
        "LULL_INGEST_PUBLIC_METRICS",
        "LULL_INGEST_READ_TIMEOUT_MS",
        "LULL_INGEST_REDIS_TIMEOUT_MS",
        "LULL_VERIFY_TOKEN",
        "LULL_APP_SECRET",
        "LULL_INSECURE_SKIP_SIGNATURE",
        "LULL_MAX_BODY_BYTES",
        # processor and sender: consumer groups
        "LULL_CLAIM_INTERVAL_MS",
        "LULL_CLAIM_IDLE_MS",
        "LULL_MAX_DELIVERIES",
        # processor
        "LULL_PROCESSOR_METRICS_PORT",
        "LULL_WINDOW_MODE",
        "LULL_WINDOW_MS",
        "LULL_MAX_WAIT_MS",
        "LULL_MAX_MESSAGES",
        "LULL_MAX_BYTES",
        "LULL_GRACE_MS",
        "LULL_MAX_LATENESS_MS",
        "LULL_MAX_SKEW_MS",
        "LULL_FLUSH_ON",
        "LULL_DEDUPE_TTL_S",
        # sender
        "LULL_SENDER_METRICS_PORT",
        "LULL_SENDER_CONCURRENCY",
        "LULL_HANDLER",
        "LULL_HANDLER_SECRET",
        "LULL_HANDLER_TIMEOUT_MS",
        "LULL_ACCESS_TOKENS",
        "LULL_GRAPH_API_BASE",
        "LULL_GRAPH_API_BASE_MESSENGER",
        "LULL_GRAPH_API_BASE_INSTAGRAM",
        "LULL_GRAPH_API_BASE_WHATSAPP",
        "LULL_GRAPH_API_VERSION",
        "LULL_GRAPH_TIMEOUT_MS",
        "LULL_INSTAGRAM_LOGIN",
        "LULL_RATE_GLOBAL",
        "LULL_RATE_PER_USER",
        "LULL_SEND_MAX_ATTEMPTS",
        "LULL_SEND_BACKOFF_BASE_MS",
        "LULL_SEND_BACKOFF_MAX_MS",
        "LULL_SUPERSEDE",
        "LULL_HISTORY_MESSAGES",
        # 0.1's history lifetime: read only to refuse it with the name that replaced it
        "LULL_HISTORY_TTL_S",
        "LULL_SENT_MESSAGE_TTL_S",
        "LULL_HANDOFF_TARGET",
        "LULL_HANDOFF_WEBHOOK",
        "LULL_HANDOFF_WEBHOOK_TIMEOUT_MS",
        "LULL_HANDOFF_WEBHOOK_ATTEMPTS",
        "LULL_OUTCOMES_KEPT",
        # presence: read receipts, typing, pacing (LULL_READ_RECEIPTS: the processor too)
        "LULL_READ_RECEIPTS",
        "LULL_TYPING",
        "LULL_TYPING_REFRESH_MS",
        "LULL_DEFER_TYPING_MS",
        "LULL_PRESENCE_AFTER_MS",
        "LULL_PRESENCE_BATCH_MS",
        "LULL_REPLY_DELAY_MS",
        "LULL_REPLY_DELAY_PER_CHAR_MS",
        "LULL_SEND_RATE_PER_USER",
        "LULL_SEND_BATCH",
        "LULL_MAX_REPLY_PARTS",
        "LULL_MAX_SENDS_PER_BATCH",
        # conversation state and human takeover: processor and sender (pause: ingest too)
        "LULL_CONVERSATION_TTL_S",
        "LULL_META_APP_ID",
        "LULL_HUMAN_PAUSE_MS",
        "LULL_HUMAN_PAUSE_MAX_MS",
        # sender: media links, the media server, inline media, transcription
        "LULL_MEDIA_SECRET",
        "LULL_MEDIA_PUBLIC_URL",
        "LULL_MEDIA_HOST",
        "LULL_MEDIA_PORT",
        "LULL_MEDIA_URL_TTL_S",
        "LULL_MEDIA_HOSTS",
        "LULL_MEDIA_MAX_BYTES",
        "LULL_MEDIA_TIMEOUT_MS",
        "LULL_MEDIA_CONCURRENCY",
        "LULL_MEDIA_INLINE_MAX_BYTES",
        "LULL_TRANSCRIBE_URL",
        "LULL_TRANSCRIBE_MODEL",
        "LULL_TRANSCRIBE_API_KEY",
        "LULL_TRANSCRIBE_TIMEOUT_MS",
        # ingest's admin API
        "LULL_ADMIN_TOKEN",
        "LULL_API_TOKEN",
        "LULL_ADMIN_HOST",
        "LULL_ADMIN_PORT",
        # the operator commands (lull pause --by)
        "LULL_OPERATOR",
    }
)
"""Read by at least one service (or by the operator commands, which share its settings)."""

TOOLING_VARIABLES = frozenset(
    {
        # Set by `lull dev` for its children (the fake Graph API's port).
        "LULL_FAKE_GRAPH_PORT",
        # The test suite, the benchmark and the chaos run. They are exported in a shell
        # that also starts services (make chaos, make bench), so services accept and ignore
        # them; listing them (rather than reserving a prefix) keeps their typos caught too.
        "LULL_TEST_REDIS_URL",
        "LULL_TEST_REQUIRE_CLUSTER",
        "LULL_TEST_REQUIRE_SPEECH",
        "LULL_BENCH_SECONDS",
        "LULL_BENCH_ROUNDS",
        "LULL_BENCH_CONNECTIONS",
        "LULL_BENCH_LOADGEN",
        "LULL_CHAOS_SECONDS",
        "LULL_CHAOS_SEED",
        # tests/contract: rewrite the generated parts of docs/contract.md
        "LULL_WRITE_DOCS",
        "LULL_CHAOS_LANES",
    }
)
"""Read only by dev, test, benchmark and chaos tooling; a service ignores them."""

KNOWN_VARIABLES = SERVICE_VARIABLES | TOOLING_VARIABLES

# Below this similarity (difflib's ratio, on the part after LULL_) a suggestion would guess.
_CUTOFF = 0.6


def unknown_variable_problems(names: Iterable[str]) -> list[tuple[str, str]]:
    """(name, sentence) for each LULL_* name (any case) that no service or tool reads."""
    problems = []
    for name in sorted(names):
        if not name.upper().startswith(PREFIX) or name in KNOWN_VARIABLES:
            continue
        problems.append((name, f"{name}: no lull service reads this variable; {_hint(name)}"))
    return problems


def closest_variable(name: str) -> str | None:
    """The known name name most likely misspells, if any is close."""
    upper = name.upper()
    if upper in KNOWN_VARIABLES:
        return upper  # only the case is wrong: environment names are case-sensitive
    tails = {known.removeprefix(PREFIX): known for known in KNOWN_VARIABLES}
    close = difflib.get_close_matches(upper.removeprefix(PREFIX), tails, n=1, cutoff=_CUTOFF)
    return tails[close[0]] if close else None


def _hint(name: str) -> str:
    closest = closest_variable(name)
    if closest is None:
        return "remove it or fix its name"
    if closest == name.upper():
        return f"did you mean {closest}? (names are upper case)"
    return f"did you mean {closest}?"
