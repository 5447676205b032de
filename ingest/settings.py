"""Ingest settings: LULL_INGEST_*, LULL_VERIFY_TOKEN, LULL_APP_SECRET and friends."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from lull.common.accounts import Accounts
from lull.common.env import ConfigError, Env
from lull.common.pause_times import pause_accounts
from lull.common.settings import CommonSettings, common_from_env
from lull.common.store.pauses import PauseSettings
from lull.ingest.admin_api import AdminSettings
from lull.ingest.send_api import ApiSettings

# WhatsApp documents webhook bodies of up to 3 MB; Messenger's are far smaller.
DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024
# Beside the processor's 9101 and the sender's 9102.
DEFAULT_METRICS_PORT = 9100


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
    read_timeout_ms: int
    """A POST whose body has not fully arrived after this long gets 408."""
    metrics_host: str
    metrics_port: int
    """/metrics, /healthz and /readyz on a port of their own; 0: not served there."""
    public_metrics: bool
    """Also serve /metrics on the public webhook port (off: it tells outsiders our traffic)."""
    admin: AdminSettings
    """The admin API (ingest/admin_api.py): off without LULL_ADMIN_TOKEN."""
    pause: PauseSettings
    """How long the admin API's pause without for_s and the send API's human message last
    (LULL_HUMAN_PAUSE_MS, LULL_HUMAN_PAUSE_MAX_MS), for an account without its own."""
    api: ApiSettings
    """The send API (ingest/send_api.py), on the admin site: off without LULL_API_TOKEN."""
    accounts: Accounts[PauseSettings] | None = None
    """Each account's pause times (LULL_ACCOUNTS); None: the environment's for all."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        """Read and validate; raises ConfigError naming every bad variable."""
        source = os.environ if environ is None else environ
        env = Env(source, collect=True)
        settings = cls._read(env, source)
        env.check()
        return settings

    @classmethod
    def _read(cls, env: Env, environ: Mapping[str, str]) -> IngestSettings:
        skip = env.flag("LULL_INSECURE_SKIP_SIGNATURE", False)
        secrets_text = env.raw("LULL_APP_SECRET")
        secrets = tuple(s.strip() for s in (secrets_text or "").split(",") if s.strip())
        if not secrets and not skip:
            env.report(
                ConfigError(
                    "LULL_APP_SECRET",
                    secrets_text,
                    "required: your Meta app secret (several comma-separated while rotating), "
                    "unless LULL_INSECURE_SKIP_SIGNATURE=1",
                    secret=True,
                )
            )
        port = env.integer("LULL_INGEST_PORT", 8080, minimum=0, maximum=65535)
        metrics_port = env.integer(
            "LULL_INGEST_METRICS_PORT", DEFAULT_METRICS_PORT, minimum=0, maximum=65535
        )
        ports_read = env.ok("LULL_INGEST_PORT", "LULL_INGEST_METRICS_PORT")
        if ports_read and metrics_port != 0 and metrics_port == port:
            env.report(
                ConfigError(
                    "LULL_INGEST_METRICS_PORT",
                    str(metrics_port),
                    f"a port other than LULL_INGEST_PORT ({port}), or 0; "
                    "LULL_INGEST_PUBLIC_METRICS=1 serves /metrics on the webhook port",
                )
            )
        read_timeout_ms = env.integer(
            "LULL_INGEST_READ_TIMEOUT_MS", 10_000, minimum=10, maximum=600_000
        )
        admin = AdminSettings.from_env(env, public_port=port, read_timeout_ms=read_timeout_ms)
        return cls(
            common=common_from_env(env),
            host=env.string("LULL_INGEST_HOST", "127.0.0.1"),
            port=port,
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
            read_timeout_ms=read_timeout_ms,
            metrics_host=env.string("LULL_METRICS_HOST", "127.0.0.1"),
            metrics_port=metrics_port,
            public_metrics=env.flag("LULL_INGEST_PUBLIC_METRICS", False),
            admin=admin,
            pause=PauseSettings.from_env(env),
            api=ApiSettings.from_env(env, admin_token=admin.token, read_timeout_ms=read_timeout_ms),
            accounts=pause_accounts(env, environ),
        )
