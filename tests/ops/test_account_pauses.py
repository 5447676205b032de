"""`lull pause` without --for lasts like a human turn on the conversation's account: its
human_pause_ms in the accounts file (LULL_ACCOUNTS), else the "*" table's, else the
environment's; a bad file is refused with its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest.test_account_pauses import ACCOUNTS, EXPECTED_MS
from tests.ops.test_takeover import lull, lull_json


def _set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


async def test_lull_pause_lasts_the_accounts_time(
    base_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS, encoding="utf-8")
    # Strict: an account the file does not name is still paused, by the "*" table's time.
    _set_env(monkeypatch, {**base_env, "LULL_ACCOUNTS": str(path), "LULL_ACCOUNTS_STRICT": "1",
                           "LULL_HUMAN_PAUSE_MS": "1000"})  # fmt: skip
    for account, expected_ms in EXPECTED_MS.items():
        state = await lull_json(capsys, "pause", f"messenger:{account}:u1")
        pause = state["pause"]
        assert pause["until_ms"] - pause["since_ms"] == expected_ms, (account, pause)
    # --for is the operator's, whatever the account's time.
    state = await lull_json(capsys, "pause", "messenger:page-a:u2", "--for", "90s")
    assert state["pause"]["until_ms"] - state["pause"]["since_ms"] == 90_000


async def test_without_a_file_the_environments_time(
    base_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _set_env(monkeypatch, {**base_env, "LULL_HUMAN_PAUSE_MS": "70000"})
    monkeypatch.delenv("LULL_ACCOUNTS", raising=False)
    state = await lull_json(capsys, "pause", "messenger:page-a:u1")
    assert state["pause"]["until_ms"] - state["pause"]["since_ms"] == 70_000


async def test_a_bad_file_is_refused_with_its_file_and_line(
    base_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["page-a"]\nhuman_pause_sm = 1000\n', encoding="utf-8")
    _set_env(monkeypatch, {**base_env, "LULL_ACCOUNTS": str(path)})
    code, out, err = await lull(capsys, "pause", "messenger:page-a:u1")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f'lull pause: bad configuration: {path}:2: ["page-a"] human_pause_sm: unknown key; '
        "did you mean human_pause_ms?"
    ]
