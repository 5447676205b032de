"""Media settings: the signed links, the media server, inline media and transcription.

Everything here is off unless configured: without LULL_MEDIA_SECRET no attachment gains a
`media` object and no media port is opened; without LULL_TRANSCRIBE_URL no voice note is
transcribed. Limits are Meta's (docs/media.md names the pages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lull.common.env import ConfigError, Env
from lull.sender.media.hosts import DEFAULT_MEDIA_HOSTS, HOSTS_FORMAT, HostRule, parse_hosts

# WhatsApp: "Media IDs in webhooks expire after 7 days": a link cannot outlive what it names.
MAX_URL_TTL_S = 7 * 86_400
DEFAULT_URL_TTL_S = 3600
# WhatsApp's largest media are documents, 100 MB (Supported Media Types).
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
# OpenAI's transcription endpoint takes files up to 25 MB; larger audio is not sent.
TRANSCRIBE_MAX_BYTES = 25 * 1024 * 1024
MIN_SECRET_CHARS = 16


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(value)
    return value.rstrip("/")


@dataclass(frozen=True)
class TranscribeSettings:
    """An OpenAI-compatible `/v1/audio/transcriptions` endpoint (LULL_TRANSCRIBE_*)."""

    url: str
    model: str
    api_key: str = field(repr=False)
    timeout_ms: int


@dataclass(frozen=True)
class MediaSettings:
    """LULL_MEDIA_* and LULL_TRANSCRIBE_*, validated."""

    secret: str = field(repr=False)
    """Empty: no media links, no media server."""
    public_url: str
    """The base the bot sees: `{public_url}/media/...`."""
    host: str
    port: int
    url_ttl_s: int
    hosts: tuple[HostRule, ...]
    """Meta's media hosts (LULL_MEDIA_HOSTS); the configured Graph hosts are added at use."""
    max_bytes: int
    timeout_ms: int
    concurrency: int
    inline_max_bytes: int
    transcribe: TranscribeSettings | None

    @property
    def links(self) -> bool:
        """Attachments get signed links (LULL_MEDIA_SECRET is set)."""
        return bool(self.secret)

    @classmethod
    def from_env(cls, env: Env) -> MediaSettings:
        """Read LULL_MEDIA_* and LULL_TRANSCRIBE_* (problems go to env)."""
        secret = env.string("LULL_MEDIA_SECRET", "")
        if secret and len(secret) < MIN_SECRET_CHARS:
            env.report(
                ConfigError(
                    "LULL_MEDIA_SECRET", secret, f"at least {MIN_SECRET_CHARS} characters",
                    secret=True,
                )
            )  # fmt: skip
        host = env.string("LULL_MEDIA_HOST", "127.0.0.1")
        port = env.integer("LULL_MEDIA_PORT", 9103, minimum=1, maximum=65535)
        public = env.parsed("LULL_MEDIA_PUBLIC_URL", None, _http_url, "an http(s) URL")
        inline = env.integer("LULL_MEDIA_INLINE_MAX_BYTES", 0, minimum=0, maximum=20 * 1024**2)
        max_bytes = env.integer(
            "LULL_MEDIA_MAX_BYTES", DEFAULT_MAX_BYTES, minimum=1024, maximum=DEFAULT_MAX_BYTES
        )
        return cls(
            secret=secret,
            public_url=public or f"http://127.0.0.1:{port}",
            host=host,
            port=port,
            url_ttl_s=env.integer(
                "LULL_MEDIA_URL_TTL_S", DEFAULT_URL_TTL_S, minimum=10, maximum=MAX_URL_TTL_S
            ),
            hosts=env.parsed("LULL_MEDIA_HOSTS", DEFAULT_MEDIA_HOSTS, parse_hosts, HOSTS_FORMAT),
            max_bytes=max_bytes,
            timeout_ms=env.integer("LULL_MEDIA_TIMEOUT_MS", 30_000, minimum=10, maximum=600_000),
            concurrency=env.integer("LULL_MEDIA_CONCURRENCY", 16, minimum=1, maximum=10_000),
            inline_max_bytes=min(inline, max_bytes),
            transcribe=_transcribe(env),
        )


def _transcribe(env: Env) -> TranscribeSettings | None:
    url = env.parsed("LULL_TRANSCRIBE_URL", None, _http_url, "an http(s) URL")
    model = env.string("LULL_TRANSCRIBE_MODEL", "whisper-1")
    api_key = env.string("LULL_TRANSCRIBE_API_KEY", "")
    timeout_ms = env.integer("LULL_TRANSCRIBE_TIMEOUT_MS", 20_000, minimum=10, maximum=600_000)
    if url is None:
        return None
    return TranscribeSettings(url=url, model=model, api_key=api_key, timeout_ms=timeout_ms)
