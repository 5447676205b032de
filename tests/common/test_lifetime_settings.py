"""LULL_CONVERSATION_TTL_S: a default above every horizon, refused when shorter than one,
and 0.1's LULL_HISTORY_TTL_S refused with the name of the variable that replaced it."""

from __future__ import annotations

import pytest

from lull.common.env import ConfigError
from lull.common.lifetime import REPLY_WINDOW_MS
from lull.processor.settings import ProcessorSettings
from lull.sender import reply_window
from lull.sender.settings import SenderSettings

SENDER = {"LULL_HANDLER": "echo"}


def test_the_default_is_eight_days_in_both_services() -> None:
    assert ProcessorSettings.from_env({}).window.conversation_ttl_s == 691_200
    assert SenderSettings.from_env(SENDER).conversation_ttl_s == 691_200


def test_shorter_than_the_dedupe_horizon_is_refused_naming_both() -> None:
    env = {"LULL_CONVERSATION_TTL_S": "86400", "LULL_DEDUPE_TTL_S": "172800"}
    with pytest.raises(ConfigError) as caught:
        ProcessorSettings.from_env(env)
    message = str(caught.value)
    assert message.startswith("LULL_CONVERSATION_TTL_S='86400': at least 172800 s")
    assert "LULL_DEDUPE_TTL_S" in message
    low_dedupe = {"LULL_CONVERSATION_TTL_S": "86400", "LULL_DEDUPE_TTL_S": "86400"}
    assert ProcessorSettings.from_env(low_dedupe).window.conversation_ttl_s == 86_400


def test_shorter_than_the_sender_retry_horizon_is_refused_naming_its_variables() -> None:
    env = {
        **SENDER,
        "LULL_CONVERSATION_TTL_S": "100000",
        "LULL_SEND_MAX_ATTEMPTS": "100",
        "LULL_SEND_BACKOFF_MAX_MS": "600000",
    }
    with pytest.raises(ConfigError) as caught:
        SenderSettings.from_env(env)
    message = str(caught.value)
    # 100 x 600 s + 24 h + 5 x 30 s
    assert message.startswith("LULL_CONVERSATION_TTL_S='100000': at least 146550 s")
    for name in (
        "LULL_SEND_MAX_ATTEMPTS",
        "LULL_SEND_BACKOFF_MAX_MS",
        "LULL_MAX_DELIVERIES",
        "LULL_CLAIM_IDLE_MS",
    ):
        assert name in message
    assert SenderSettings.from_env({**env, "LULL_CONVERSATION_TTL_S": "146550"})


def test_a_minimum_and_a_maximum_bound_it() -> None:
    for value in ("59", "31536001", "soon"):
        with pytest.raises(ConfigError, match="LULL_CONVERSATION_TTL_S"):
            ProcessorSettings.from_env({"LULL_CONVERSATION_TTL_S": value})


def test_the_old_history_ttl_is_refused_with_the_new_name() -> None:
    for build in (
        lambda: ProcessorSettings.from_env({"LULL_HISTORY_TTL_S": "86400"}),
        lambda: SenderSettings.from_env({**SENDER, "LULL_HISTORY_TTL_S": "86400"}),
    ):
        with pytest.raises(ConfigError) as caught:
            build()
        assert str(caught.value).startswith("LULL_HISTORY_TTL_S='86400': no longer read")
        assert "LULL_CONVERSATION_TTL_S" in str(caught.value)


def test_the_throttle_horizon_is_the_senders_reply_window() -> None:
    assert reply_window.REPLY_WINDOW_MS == REPLY_WINDOW_MS
