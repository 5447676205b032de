"""LULL_MEDIA_* and LULL_TRANSCRIBE_*: off by default, validated, secrets never shown."""

from __future__ import annotations

import pytest

from lull.common.env import ConfigError
from lull.sender.media.hosts import Allowlist, parse_hosts
from lull.sender.settings import SenderSettings

BASE = {"LULL_HANDLER": "echo"}


def _settings(**env: str) -> SenderSettings:
    return SenderSettings.from_env({**BASE, **env})


def test_everything_is_off_by_default() -> None:
    media = _settings().media
    assert (media.links, media.inline_max_bytes, media.transcribe) == (False, 0, None)
    assert media.public_url == "http://127.0.0.1:9103"


def test_bad_values_are_refused_each_naming_its_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        _settings(
            LULL_MEDIA_SECRET="short",
            LULL_MEDIA_URL_TTL_S=str(8 * 86_400),
            LULL_MEDIA_HOSTS="http://evil/",
            LULL_MEDIA_PUBLIC_URL="ftp://x",
            LULL_TRANSCRIBE_URL="not a url",
        )
    text = str(caught.value)
    for name in ("LULL_MEDIA_SECRET", "LULL_MEDIA_URL_TTL_S", "LULL_MEDIA_HOSTS",
                 "LULL_MEDIA_PUBLIC_URL", "LULL_TRANSCRIBE_URL"):  # fmt: skip
        assert name in text
    assert "short" not in text  # the secret is masked


def test_the_media_port_is_not_the_metrics_port() -> None:
    with pytest.raises(ConfigError, match="LULL_MEDIA_PORT"):
        _settings(
            LULL_MEDIA_SECRET="a-secret-of-enough-length",
            LULL_MEDIA_PORT="9102",
            LULL_SENDER_METRICS_PORT="9102",
        )


def test_secrets_stay_out_of_the_repr() -> None:
    settings = _settings(
        LULL_MEDIA_SECRET="a-secret-of-enough-length",
        LULL_TRANSCRIBE_URL="http://127.0.0.1:1/v1/audio/transcriptions",
        LULL_TRANSCRIBE_API_KEY="sk-very-secret",
    )
    assert "a-secret-of-enough-length" not in repr(settings)
    assert "sk-very-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1", True),
        ("https://scontent-lhr8-1.xx.fbcdn.net/v/t1/x.jpg?oe=1", True),
        ("https://scontent.cdninstagram.com/x.jpg", True),
        ("https://fbcdn.net.evil.example/x.jpg", False),
        ("https://evilfbcdn.net/x.jpg", False),
        ("https://lookaside.fbsbx.com:8443/x", False),  # not the scheme's port
        ("http://user:pw@lookaside.fbsbx.com/x", False),
        ("file:///etc/passwd", False),
        ("https://graph.facebook.com/v23.0/1", True),  # the configured Graph host
        ("http://127.0.0.1:9103/media", False),
    ],
)
def test_the_allowlist(url: str, allowed: bool) -> None:
    rules = _settings().media.hosts
    assert rules == parse_hosts(".fbsbx.com,.fbcdn.net,.cdninstagram.com")
    assert Allowlist.of(rules, ["https://graph.facebook.com"]).allows(url) is allowed
