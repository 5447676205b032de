"""Ingest settings: LULL_INGEST_*, LULL_VERIFY_TOKEN, LULL_APP_SECRET and friends."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from common.env import ConfigError, Env
from common.settings import CommonSettings

# WhatsApp documents webhook bodies of up to 3 MB; Messenger's are far smaller.
DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class IngestSettings:
    """Everything ingest reads from the environment, validated."""

    common: CommonSettings
    host: str
    port: int
    verify_token: str = field(repr=False)
    app_secrets: tuple[str, ...] = field(repr=False)
    insecure_skip_signature: bool
    max_body_bytes: int
    redis_timeout_ms: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        """Read and validate; raises ConfigError naming the first bad variable."""
        source = os.environ if environ is None else environ
        env = Env(source)
        skip = env.flag("LULL_INSECURE_SKIP_SIGNATURE", False)
        secrets_text = env.raw("LULL_APP_SECRET")
        secrets = tuple(s.strip() for s in (secrets_text or "").split(",") if s.strip())
        if not secrets and not skip:
            raise ConfigError(
                "LULL_APP_SECRET",
                secrets_text,
                "required: your Meta app secret (several comma-separated while rotating), "
                "unless LULL_INSECURE_SKIP_SIGNATURE=1",
                secret=True,
            )
        return cls(
            common=CommonSettings.from_env(source),
            host=env.string("LULL_INGEST_HOST", "127.0.0.1"),
            port=env.integer("LULL_INGEST_PORT", 8080, minimum=0, maximum=65535),
            verify_token=env.required(
                "LULL_VERIFY_TOKEN", "the token you typed into Meta's webhook settings", secret=True
            ),
            app_secrets=secrets,
            insecure_skip_signature=skip,
            max_body_bytes=env.integer(
                "LULL_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024, maximum=64 * 1024**2
            ),
            redis_timeout_ms=env.integer(
                "LULL_INGEST_REDIS_TIMEOUT_MS", 2000, minimum=10, maximum=60_000
            ),
        )
