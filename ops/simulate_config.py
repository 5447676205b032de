"""What one `lull simulate` run is: its parameters, validated, and the loopback-only rule.

A load generator pointed at a real host by a typo is a denial of service: a URL whose host
is not loopback is refused unless allow_remote is set.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lull.ops.simulate_payloads import (
    DEFAULT_ACCOUNT_IDS,
    PLATFORMS,
    run_user_prefix,
    user_id,
)

MAX_POSTS = 1_000_000
"""users * messages_per_user above this is refused: a typo, not a load test."""
DEFAULT_CONCURRENCY = 64


class SimulateError(ValueError):
    """A configuration simulate refuses to run with; the message says what is allowed."""


@dataclass(frozen=True)
class SimulateConfig:
    """One run: where to send, who sends how much, and the bounds."""

    url: str
    app_secret: str = field(repr=False)
    platform: str = "messenger"
    users: int = 3
    messages_per_user: int = 3
    gap_ms: int = 800
    """Pause between one user's messages, before jitter."""
    rate_per_s: float | None = None
    """Cap on POSTs per second over the whole run; None: as fast as the gaps allow."""
    duration_s: float | None = None
    """Stop starting POSTs after this long; None: when every message is sent."""
    timeout_s: float = 5.0
    """Per POST, connect included."""
    concurrency: int = DEFAULT_CONCURRENCY
    """POSTs in flight at once (and the connection pool size)."""
    seed: int | None = None
    """Fixes texts, jitter and order of the run; the mids and users stay unique (run_id)."""
    account_id: str | None = None
    """Page, Instagram account or WhatsApp phone number id; None: the platform's default."""
    user_prefix: str | None = None
    """User ids are this prefix and a 6-digit number; None: fresh users each run (a prefix
    drawn from run_id), who start new conversations."""
    run_id: str | None = None
    """Part of every mid (and of the user ids, without user_prefix), so runs never collide;
    None: random."""
    allow_remote: bool = False
    """Send to a host that is not loopback."""
    media: bool = False
    """Each user also sends a picture and a voice note after the texts (demo media)."""
    media_base: str = "http://127.0.0.1:8090"
    """Messenger and Instagram: where the demo media's CDN URLs point (`make run`'s fake)."""
    keep_records: bool = True
    """Keep every PostRecord in Summary.records (a long run may prefer on_post alone)."""

    def __post_init__(self) -> None:
        _check(
            self.platform in PLATFORMS,
            f"platform must be one of {', '.join(PLATFORMS)} (got {self.platform!r})",
        )
        _check(self.users >= 1, f"users must be at least 1 (got {self.users})")
        _check(
            self.messages_per_user >= 1,
            f"messages per user must be at least 1 (got {self.messages_per_user})",
        )
        _check(
            self.users * self.messages_per_user <= MAX_POSTS,
            f"users * messages per user must be at most {MAX_POSTS}",
        )
        _check(self.gap_ms >= 0, f"gap ms must be >= 0 (got {self.gap_ms})")
        _check(
            self.rate_per_s is None or self.rate_per_s > 0,
            f"rate must be > 0 POSTs/s (got {self.rate_per_s})",
        )
        _check(
            self.duration_s is None or self.duration_s > 0,
            f"duration must be > 0 s (got {self.duration_s})",
        )
        _check(self.timeout_s > 0, f"timeout must be > 0 s (got {self.timeout_s})")
        _check(self.concurrency >= 1, f"concurrency must be at least 1 (got {self.concurrency})")
        _check(bool(self.app_secret), "the app secret must not be empty")
        check_url(self.url, allow_remote=self.allow_remote)

    @property
    def planned(self) -> int:
        """POSTs the run sends when nothing stops it early."""
        return self.users * (self.messages_per_user + (2 if self.media else 0))

    @property
    def account(self) -> str:
        """The account every simulated user writes to."""
        return self.account_id or DEFAULT_ACCOUNT_IDS[self.platform]

    def user(self, index: int, run_id: str) -> str:
        """The id of simulated user index (0-based) in the run run_id."""
        prefix = self.user_prefix
        if prefix is None:
            prefix = run_user_prefix(self.platform, run_id)
        return user_id(prefix, index)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SimulateError(message)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_remote: bool) -> None:
    """Raise SimulateError unless url is http(s) on loopback (or allow_remote)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SimulateError(f"url {url!r} is not an http:// or https:// URL")
    if not allow_remote and not is_loopback(parts.hostname):
        raise SimulateError(
            f"refusing to send to {parts.hostname}: not loopback (127.0.0.0/8, ::1, "
            "localhost); pass --allow-remote (allow_remote=True) to send there"
        )
