"""Ingest configuration: clear errors naming the variable, secrets never shown."""

from __future__ import annotations

import pytest

from lull.common.env import ConfigError
from lull.ingest.settings import IngestSettings

GOOD = {"LULL_APP_SECRET": "s3cret-value", "LULL_VERIFY_TOKEN": "tok"}


def test_defaults() -> None:
    settings = IngestSettings.from_env(GOOD)
    assert settings.port == 8080
    assert settings.max_body_bytes == 3 * 1024 * 1024
    assert settings.redis_timeout_ms == 2000
    assert settings.app_secrets == ("s3cret-value",)
    assert settings.common.namespace == "lull"
    assert settings.common.shards == 1
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9100)
    assert settings.public_metrics is False
    assert "s3cret-value" not in repr(settings)


def test_metrics_port_settings() -> None:
    env = {"LULL_INGEST_METRICS_PORT": "0", "LULL_INGEST_PUBLIC_METRICS": "1"}
    settings = IngestSettings.from_env({**GOOD, **env, "LULL_METRICS_HOST": "::1"})
    assert (settings.metrics_host, settings.metrics_port) == ("::1", 0)
    assert settings.public_metrics is True
    with pytest.raises(ConfigError, match="LULL_INGEST_METRICS_PORT='8080': a port other than"):
        IngestSettings.from_env({**GOOD, "LULL_INGEST_METRICS_PORT": "8080"})


def test_rotation_takes_every_secret() -> None:
    settings = IngestSettings.from_env({**GOOD, "LULL_APP_SECRET": "old, new ,"})
    assert settings.app_secrets == ("old", "new")


def test_missing_secret_is_refused_unless_insecure() -> None:
    with pytest.raises(ConfigError, match="LULL_APP_SECRET=<unset>"):
        IngestSettings.from_env({"LULL_VERIFY_TOKEN": "tok"})
    settings = IngestSettings.from_env(
        {"LULL_VERIFY_TOKEN": "tok", "LULL_INSECURE_SKIP_SIGNATURE": "1"}
    )
    assert settings.insecure_skip_signature
    assert settings.app_secrets == ()


def test_missing_verify_token() -> None:
    with pytest.raises(ConfigError, match="LULL_VERIFY_TOKEN"):
        IngestSettings.from_env({"LULL_APP_SECRET": "x"})


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("LULL_INGEST_PORT", "80a", "integer"),
        ("LULL_INGEST_PORT", "70000", "<= 65535"),
        ("LULL_SHARDS", "0", ">= 1"),
        ("LULL_MAX_BODY_BYTES", "-1", "integer"),
        ("LULL_INGEST_REDIS_TIMEOUT_MS", "soon", "integer"),
        ("LULL_INSECURE_SKIP_SIGNATURE", "maybe", "one of"),
        ("LULL_INGEST_METRICS_PORT", "65536", "<= 65535"),
        ("LULL_INGEST_PUBLIC_METRICS", "yes please", "one of"),
        ("LULL_LOG_FORMAT", "xml", "json, console"),
        ("LULL_REDIS_URL", "http://x", "redis://"),
        ("LULL_NAMESPACE", "a{b}", "braces"),
    ],
)
def test_bad_values_name_variable_value_and_allowed(name: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IngestSettings.from_env({**GOOD, name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r}")
    assert allowed in message


def test_secret_values_are_masked_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        IngestSettings.from_env({"LULL_APP_SECRET": "  ", "LULL_VERIFY_TOKEN": "tok"})
    assert "<unset>" in str(caught.value)
