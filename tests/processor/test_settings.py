"""Processor settings: the flush kinds and what 0.1's values still mean."""

from __future__ import annotations

import pytest

from lull.common.env import ConfigError, Env
from lull.processor.settings import takeover_from_env, window_from_env


def _flush_on(value: str) -> frozenset[str]:
    return window_from_env(Env({"LULL_FLUSH_ON": value})).flush_on


def test_the_default_flushes_taps_on_every_platform() -> None:
    assert window_from_env(Env({})).flush_on == {"postback", "quick_reply"}


@pytest.mark.parametrize(
    ("value", "kinds"),
    [
        # 0.1's names for WhatsApp taps stand for the kinds those taps have now.
        ("interactive", {"quick_reply", "postback", "flow_reply"}),
        ("button", {"quick_reply"}),
        ("Postback, quick_reply", {"postback", "quick_reply"}),
        ("none", set()),
        ("flow_reply,reaction", {"flow_reply", "reaction"}),
    ],
)
def test_flush_kinds_old_and_new(value: str, kinds: set[str]) -> None:
    assert _flush_on(value) == kinds


def test_a_bad_flush_kind_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LULL_FLUSH_ON"):
        _flush_on("post back!")


def test_takeover_settings_default_and_a_bad_app_id_names_the_variable() -> None:
    settings = takeover_from_env(Env({}))
    assert settings.meta_app_id == ""
    assert (settings.pause.quiet_ms, settings.pause.cap_ms) == (1_800_000, 86_400_000)
    assert (settings.history_messages, settings.conversation_ttl_s) == (20, 691_200)
    assert takeover_from_env(Env({"LULL_META_APP_ID": " 1517776481860111 "})).meta_app_id == (
        "1517776481860111"
    )
    with pytest.raises(ConfigError, match="LULL_META_APP_ID"):
        takeover_from_env(Env({"LULL_META_APP_ID": "my-app"}))
