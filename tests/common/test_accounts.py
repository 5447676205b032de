"""The accounts file (LULL_ACCOUNTS): read with the environment's validators, every mistake
at once with its file:line, secrets never in the file nor in a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from lull.common.accounts import load_accounts
from lull.common.accounts_file import ACCOUNT_KEYS
from lull.common.env import ConfigError, problems_of
from lull.common.store.pauses import PauseSettings
from lull.processor.settings import ProcessorSettings, window_shape
from lull.sender.handoff import HandoffSettings, webhook_shown
from lull.sender.settings import SenderSettings

GOOD = """\
# two accounts and the defaults
["*"]
window_ms = 2000

["106000000000001"]
platform = "messenger"
name = "Shop page"
window_ms = 800
flush_on = ["postback"]
handler_secret = "${SHOP_SECRET}"

["109000000000002"]
platform = "whatsapp"
max_wait_ms = 60_000
"""


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "accounts.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _problems(tmp_path: Path, text: str, **environ: str) -> list[str]:
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_accounts({"LULL_ACCOUNTS": path, **environ}, window_shape)
    return [str(p).replace(path, "FILE") for p in problems_of(caught.value)]


def test_each_account_reads_the_environment_then_defaults_then_its_own_table(
    tmp_path: Path,
) -> None:
    environ = {"LULL_ACCOUNTS": _file(tmp_path, GOOD), "LULL_MAX_WAIT_MS": "40000",
               "SHOP_SECRET": "s3"}  # fmt: skip
    accounts = load_accounts(environ, window_shape)
    shop, number = accounts.of("106000000000001"), accounts.of("109000000000002")
    assert (shop.window_ms, shop.max_wait_ms) == (800, 40_000)
    assert shop.flush_on == {"postback"}
    assert (number.window_ms, number.max_wait_ms) == (2000, 60_000)
    # An account the file does not name: the defaults ("*" over the environment).
    other = accounts.of("999")
    assert (other.window_ms, other.max_wait_ms) == (2000, 40_000)
    assert accounts.refusal("999") is None
    assert accounts.file is not None
    assert accounts.file.accounts["106000000000001"].name == "Shop page"


def test_strict_refuses_an_account_the_file_does_not_name(tmp_path: Path) -> None:
    environ = {"LULL_ACCOUNTS": _file(tmp_path, GOOD), "LULL_ACCOUNTS_STRICT": "1",
               "SHOP_SECRET": "s3"}  # fmt: skip
    accounts = load_accounts(environ, window_shape)
    assert accounts.refusal("106000000000001") is None
    refusal = accounts.refusal("999")
    assert refusal is not None
    assert "999" in refusal
    assert "LULL_ACCOUNTS_STRICT=1" in refusal


def test_every_mistake_at_once_with_its_line_and_no_secret_shown(tmp_path: Path) -> None:
    text = """\
["*"]
window_sm = 2000

["p1"]
platform = "telegram"
window_ms = "soon"
handler_secret = "hunter2-the-real-secret"
redis_url = "redis://x"

["p2"]
access_token = "${UNSET_TOKEN}"
max_wait_ms = 100
window_ms = 500
"""
    problems = _problems(tmp_path, text)
    assert problems == [
        'FILE:2: ["*"] window_sm: unknown key; did you mean window_ms?',
        "FILE:5: [\"p1\"] platform='telegram': one of messenger, instagram, whatsapp",
        "FILE:6: [\"p1\"] window_ms='soon': an integer >= 1 and <= 86400000",
        'FILE:7: ["p1"] handler_secret=<23 characters, masked>: a secret written in the '
        "file; write ${ENV_VAR} or file:/path (the file holds no secret)",
        'FILE:8: ["p1"] redis_url: not a per-account setting: set LULL_REDIS_URL in the '
        "environment",
        "FILE:11: [\"p2\"] access_token='${UNSET_TOKEN}': UNSET_TOKEN is unset or empty",
        "FILE:12: [\"p2\"] max_wait_ms='100': >= LULL_WINDOW_MS (500)",
    ]
    assert not any("hunter2" in p for p in problems)


def test_bad_values_are_the_environments_messages_with_the_place(tmp_path: Path) -> None:
    text = """\
["p1"]
window_ms = "soon"

["p2"]
window_ms = 500
max_wait_ms = 100
"""
    assert _problems(tmp_path, text) == [
        "FILE:2: [\"p1\"] window_ms='soon': an integer >= 1 and <= 86400000",
        "FILE:6: [\"p2\"] max_wait_ms='100': >= LULL_WINDOW_MS (500)",
    ]


def test_a_file_that_is_not_toml_names_its_line(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, '["p1"]\nwindow_ms = = 3\n')
    assert problem.startswith("FILE:2: not TOML")


def test_secrets_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("from-a-file\n", encoding="utf-8")
    text = f'["p1"]\naccess_token = "file:{secret_file}"\n["p2"]\naccess_token = "${{TOK}}"\n'
    environ = {"LULL_ACCOUNTS": _file(tmp_path, text), "TOK": "from-env"}
    accounts = load_accounts(environ, window_shape)
    assert accounts.file is not None
    tables = accounts.file.accounts
    assert (tables["p1"].access_token, tables["p2"].access_token) == ("from-a-file", "from-env")
    assert "from-env" not in repr(tables["p2"])


def test_the_service_stops_with_the_files_and_the_environments_problems(tmp_path: Path) -> None:
    environ = {"LULL_ACCOUNTS": _file(tmp_path, '["p1"]\nmax_bytes = 1\n'),
               "LULL_GRACE_MS": "-1"}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        ProcessorSettings.from_env(environ)
    text = str(caught.value)
    assert "LULL_GRACE_MS='-1'" in text
    assert ":2: [\"p1\"] max_bytes='1': an integer >= 256" in text


def test_strict_without_a_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="LULL_ACCOUNTS_STRICT"):
        ProcessorSettings.from_env({"LULL_ACCOUNTS_STRICT": "1"})


def test_the_processor_needs_none_of_the_senders_secrets(tmp_path: Path) -> None:
    text = '["p1"]\nwindow_ms = 900\naccess_token = "${P1_TOKEN}"\n'
    settings = ProcessorSettings.from_env({"LULL_ACCOUNTS": _file(tmp_path, text)})
    assert settings.accounts is not None
    assert settings.accounts.of("p1").window.window_ms == 900
    # A secret written in the file is refused all the same.
    text = '["p1"]\nwindow_ms = 900\naccess_token = "EAAG-literal"\n'
    with pytest.raises(ConfigError, match="a secret written in the file"):
        ProcessorSettings.from_env({"LULL_ACCOUNTS": _file(tmp_path, text)})


def test_takeover_keys_are_read_per_account(tmp_path: Path) -> None:
    text = """\
["*"]
human_pause_max_ms = 7200000

["p1"]
human_pause_ms = 60000
handoff_target = "page_inbox"
handoff_webhook = "https://crm.example/lull?token=t0ken"
handoff_webhook_timeout_ms = 2000
handoff_webhook_attempts = 2

["p2"]
handoff_webhook = "${P2_CRM}"
"""
    environ = {"LULL_ACCOUNTS": _file(tmp_path, text), "LULL_HANDLER": "echo",
               "P2_CRM": "https://crm2.example/h"}  # fmt: skip
    processor = ProcessorSettings.from_env(environ).accounts
    assert processor is not None
    assert processor.of("p1").pause == PauseSettings(quiet_ms=60_000, cap_ms=7_200_000)
    assert processor.of("p2").pause == PauseSettings(quiet_ms=30 * 60_000, cap_ms=7_200_000)
    sender = SenderSettings.from_env(environ).accounts
    assert sender is not None
    p1, p2 = sender.of("p1"), sender.of("p2")
    assert p1.pause == PauseSettings(quiet_ms=60_000, cap_ms=7_200_000)
    assert p1.handoff == HandoffSettings(
        "page_inbox", "https://crm.example/lull?token=t0ken", 2000, 2
    )
    assert (p2.handoff.target, p2.handoff.webhook_url) == ("none", "https://crm2.example/h")
    assert sender.of("p3").handoff == HandoffSettings()


def test_bad_takeover_values_name_their_line_and_mask_the_webhooks_secrets(
    tmp_path: Path,
) -> None:
    text = """\
["*"]
human_pause_ms = 0

["p1"]
handoff_target = "crm"
handoff_webhook = "ftp://user:pw@crm.example/x?token=t0ken"
handoff_webhook_attempts = 1000
human_pause_max_ms = "1d"
handoff_webhok = "https://crm.example"

["p2"]
handoff_webhook = "${UNSET_CRM}"
"""
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        SenderSettings.from_env({"LULL_ACCOUNTS": path, "LULL_HANDLER": "echo"})
    problems = [str(p).replace(path, "FILE") for p in problems_of(caught.value)]
    assert problems == [
        "FILE:2: [\"*\"] human_pause_ms='0': an integer >= 1",
        "FILE:5: [\"p1\"] handoff_target='crm': one of none, page_inbox",
        "FILE:6: [\"p1\"] handoff_webhook='ftp://<masked>@crm.example/x?<masked>': an http(s) "
        "URL, or unset",
        "FILE:7: [\"p1\"] handoff_webhook_attempts='1000': an integer >= 1 and <= 100",
        "FILE:8: [\"p1\"] human_pause_max_ms='1d': an integer >= 1",
        'FILE:9: ["p1"] handoff_webhok: unknown key; did you mean handoff_webhook?',
        "FILE:12: [\"p2\"] handoff_webhook='${UNSET_CRM}': UNSET_CRM is unset or empty",
    ]
    assert not any("t0ken" in p or "pw" in p for p in problems)


def test_every_account_key_is_in_the_docs_table() -> None:
    table = (Path(__file__).parents[2] / "docs" / "accounts.md").read_text(encoding="utf-8")
    for key in ACCOUNT_KEYS:
        assert f"`{key}`" in table, key


def test_an_accounts_longest_handoff_counts_in_the_senders_retry_horizon(
    tmp_path: Path,
) -> None:
    # 25 h outlasts the environment's horizon (about 24.2 h), not an account whose webhook
    # may be tried 100 times for 2 minutes each (5 h more).
    text = '["p1"]\nhandoff_webhook = "https://crm.example/h"\nhandoff_webhook_attempts = 100\n'
    text += "handoff_webhook_timeout_ms = 120000\n"
    environ = {"LULL_HANDLER": "echo", "LULL_CONVERSATION_TTL_S": "90000"}
    SenderSettings.from_env(environ)
    with pytest.raises(ConfigError, match="LULL_CONVERSATION_TTL_S='90000': at least 105"):
        SenderSettings.from_env({**environ, "LULL_ACCOUNTS": _file(tmp_path, text)})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://crm.example:8443/h", "https://crm.example:8443/h"),
        ("https://u:pw@crm.example/h?key=k#f", "https://<masked>@crm.example/h?<masked>#<masked>"),
        ("EAAG-a-token-pasted-here", "<24 characters, masked>"),
        ("http://[::1]:80/h", "http://[::1]:80/h"),
    ],
)
def test_a_webhook_is_shown_without_what_may_be_a_secret(url: str, shown: str) -> None:
    assert webhook_shown(url) == shown
