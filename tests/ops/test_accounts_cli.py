"""`lull accounts`: each account's effective settings, secrets masked; `--check FILE`."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from lull.cli import main

FILE = """\
["*"]
window_ms = 3000

["106000000000001"]
platform = "messenger"
name = "Shop page"
window_ms = 2000
handler = "https://user:pw@bot.example/lull?key=in-the-query"
handler_secret = "${SHOP_SECRET}"
access_token = "file:TOKEN_FILE"

["109000000000002"]
platform = "whatsapp"
"""


@pytest.fixture
def accounts_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    token = tmp_path / "token"
    token.write_text("EAAG-the-page-token\n", encoding="utf-8")
    path = tmp_path / "accounts.toml"
    path.write_text(FILE.replace("TOKEN_FILE", str(token)), encoding="utf-8")
    for name in ("LULL_ACCOUNTS", "LULL_ACCOUNTS_STRICT", "LULL_HANDLER", "LULL_ACCESS_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOP_SECRET", "the-shop-secret")
    monkeypatch.setenv("LULL_HANDLER", "echo")
    monkeypatch.setenv("LULL_ACCESS_TOKENS", '{"109000000000002": "EAAG-wa-token"}')
    return path


def test_json_shows_each_accounts_settings_with_secrets_masked(
    accounts_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LULL_ACCOUNTS", str(accounts_file))
    assert main(["accounts", "--json"]) == 0
    out = capsys.readouterr().out
    document = orjson.loads(out)
    defaults, shop, number = document["accounts"]
    assert (defaults["account"], defaults["window_ms"], defaults["handler"]) == ("*", 3000, "echo")
    assert shop["name"] == "Shop page"
    assert (shop["platform"], shop["window_ms"], shop["max_wait_ms"]) == ("messenger", 2000, 30000)
    assert shop["handler"] == "https://bot.example/lull"
    assert shop["handler_secret"] == "<15 characters, masked>"
    assert (shop["access_token_from"], number["access_token_from"]) == (
        "file",
        "LULL_ACCESS_TOKENS",
    )
    assert (number["window_ms"], number["handler"]) == (3000, "echo")
    for secret in ("the-shop-secret", "EAAG", "in-the-query", "pw@"):
        assert secret not in out


def test_text_says_the_same(
    accounts_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LULL_ACCOUNTS", str(accounts_file))
    assert main(["accounts"]) == 0
    out = capsys.readouterr().out
    assert "106000000000001 messenger Shop page\n  window: sliding 2000 ms" in out
    assert "the-shop-secret" not in out


def test_check_validates_a_file_without_running(
    accounts_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["accounts", "--check", str(accounts_file)]) == 0
    assert "2 accounts, no problem found" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('["p1"]\nwindow_ms = 0\nhandler = "ftp://x"\nplatfrom = "messenger"\n')
    assert main(["accounts", "--check", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 2)[2].split(" ", 1)[0] for line in err] == [
        f"{bad}:2:",
        f"{bad}:3:",
        f"{bad}:4:",
    ]
    assert "did you mean platform?" in err[2]


def test_takeover_settings_are_shown_with_the_webhooks_secrets_masked(
    accounts_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts_file.write_text(
        accounts_file.read_text(encoding="utf-8")
        + 'human_pause_ms = 60000\nhandoff_target = "page_inbox"\n'
        + 'handoff_webhook = "https://crm.example/lull?key=crm-key"\n'
        + "handoff_webhook_attempts = 2\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("LULL_ACCOUNTS", str(accounts_file))
    monkeypatch.setenv("LULL_HUMAN_PAUSE_MAX_MS", "7200000")
    assert main(["accounts", "--json"]) == 0
    out = capsys.readouterr().out
    defaults, _, number = orjson.loads(out)["accounts"]
    assert {key: number[key] for key in number if "pause" in key or "handoff" in key} == {
        "human_pause_ms": 60000,
        "human_pause_max_ms": 7200000,
        "handoff_target": "page_inbox",
        "handoff_webhook": "https://crm.example/lull?<masked>",
        "handoff_webhook_timeout_ms": 5000,
        "handoff_webhook_attempts": 2,
    }
    assert (defaults["human_pause_ms"], defaults["handoff_webhook"]) == (1_800_000, None)
    assert "crm-key" not in out
    assert main(["accounts"]) == 0
    out = capsys.readouterr().out
    assert (
        "  takeover: pause 60000 ms after a human's message, at most 7200000 ms; handoff target "
        "page_inbox, webhook https://crm.example/lull?<masked> (timeout 5000 ms, 2 attempts)\n"
    ) in out
    assert "crm-key" not in out
