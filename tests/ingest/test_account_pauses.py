"""Per-account pause times in ingest (LULL_ACCOUNTS): the admin API's pause without for_s
and the send API's human message last the conversation's account's time, as a human's turn
does in the processor; a reload changes the pauses started after it; a bad file stops
ingest at start with its file:line. The real ingest app, its admin site on a real port, a
real ingest process for SIGHUP and the file's watch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from lull.common import signing
from lull.common.env import ConfigError
from lull.dev.embedded_redis import free_port
from lull.ingest.app import PAUSE_TIMES, create_app, serve_admin_port
from lull.ingest.settings import IngestSettings
from tests.ingest.conftest import SECRET
from tests.test_accounts_services import Output

ADMIN_TOKEN = "0123456789abcdef0123456789abcdef"
API_TOKEN = "fedcba9876543210fedcba9876543210"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WAIT_S = 20
ACCOUNTS = """\
["*"]
human_pause_ms = 120000
human_pause_max_ms = 3600000

["page-a"]
platform = "messenger"
human_pause_ms = 60000

["page-b"]
platform = "messenger"
human_pause_ms = 600000
human_pause_max_ms = 90000
"""
EXPECTED_MS = {"page-a": 60_000, "page-b": 90_000, "page-c": 120_000}
"""page-a: its own time; page-b: its own cap (below its own time); page-c, which the file
does not name: the "*" table's (the environment's 1000 is nobody's)."""


def _page_a(quiet_ms: int) -> str:
    """ACCOUNTS with page-a's human_pause_ms changed."""
    return ACCOUNTS.replace("human_pause_ms = 60000\n", f"human_pause_ms = {quiet_ms}\n", 1)


def _env(ingest_env: dict[str, str], path: Path, admin_port: int, **more: str) -> dict[str, str]:
    return {
        **ingest_env,
        "LULL_ACCOUNTS": str(path),
        "LULL_HUMAN_PAUSE_MS": "1000",
        "LULL_ADMIN_TOKEN": ADMIN_TOKEN,
        "LULL_ADMIN_PORT": str(admin_port),
        "LULL_API_TOKEN": API_TOKEN,
        "LULL_ACCESS_TOKENS": '{"*": "token"}',
        "LULL_INGEST_METRICS_PORT": "0",
        **more,
    }


class Ingest:
    """A running ingest app: its public test client and its admin site's URL."""

    def __init__(self, public: TestClient, admin_port: int) -> None:  # type: ignore[type-arg]
        self.public = public
        self.admin = f"http://127.0.0.1:{admin_port}"


@pytest.fixture
async def ingest(ingest_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Ingest]:
    """ingest with the accounts file ACCOUNTS (strict) and its admin and send APIs on."""
    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS, encoding="utf-8")
    admin_port = free_port()
    env = _env(ingest_env, path, admin_port, LULL_ACCOUNTS_STRICT="1")
    app = create_app(IngestSettings.from_env(env))
    serve_admin_port(app)
    async with TestClient(TestServer(app)) as public:
        yield Ingest(public, admin_port)


async def _admin_pause(session: aiohttp.ClientSession, base: str, conversation: str) -> int:
    """Pause without for_s; the pause's length."""
    async with session.post(f"{base}/conversations/{conversation}/pause", headers=ADMIN) as reply:
        assert reply.status == 200, await reply.text()
        return _length(await reply.json())


async def _pause_length(session: aiohttp.ClientSession, base: str, conversation: str) -> int:
    async with session.get(f"{base}/conversations/{conversation}", headers=ADMIN) as reply:
        assert reply.status == 200, await reply.text()
        return _length(await reply.json())


def _length(state: dict[str, Any]) -> int:
    pause = state["pause"]
    assert state["paused"] is True, state
    return int(pause["until_ms"]) - int(pause["since_ms"])


async def test_an_admin_pause_without_for_s_lasts_its_accounts_time(ingest: Ingest) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for account, expected_ms in EXPECTED_MS.items():
            # page-c is not in the file and LULL_ACCOUNTS_STRICT=1: still paused, by "*".
            assert await _admin_pause(session, ingest.admin, f"messenger:{account}:u1") == (
                expected_ms
            )
        # An explicit for_s is the operator's, whatever the account's time.
        url = f"{ingest.admin}/conversations/messenger:page-a:u2/pause"
        async with session.post(url, json={"for_s": 5}, headers=ADMIN) as reply:
            assert _length(await reply.json()) == 5000


async def test_strict_does_not_refuse_a_webhook_of_an_account_not_in_the_file(
    ingest: Ingest,
) -> None:
    body = b'{"object":"page","entry":[{"id":"page-c","messaging":[]}]}'
    headers = {"X-Hub-Signature-256": signing.sign(SECRET, body)}
    response = await ingest.public.post("/webhook", data=body, headers=headers)
    assert response.status == 200


async def test_a_send_api_human_message_pauses_for_its_accounts_time(ingest: Ingest) -> None:
    send = {"replies": [{"text": "Ana here"}], "as": "human"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for account, expected_ms in EXPECTED_MS.items():
            conversation = f"messenger:{account}:u1"
            headers = {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": account}
            url = f"{ingest.admin}/v1/conversations/{conversation}/messages"
            async with session.post(url, json=send, headers=headers) as reply:
                assert reply.status == 202, await reply.text()
            assert await _pause_length(session, ingest.admin, conversation) == expected_ms


async def test_a_reload_changes_the_pauses_started_after_it(ingest: Ingest, tmp_path: Path) -> None:
    live = ingest.public.app[PAUSE_TIMES].accounts
    assert live is not None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        assert await _admin_pause(session, ingest.admin, "messenger:page-a:u1") == 60_000
        path = tmp_path / "accounts.toml"
        path.write_text(_page_a(45000))
        assert live.reload("test")
        assert await _admin_pause(session, ingest.admin, "messenger:page-a:u2") == 45_000
        # The pause started before the reload keeps its end.
        assert await _pause_length(session, ingest.admin, "messenger:page-a:u1") == 60_000


def test_a_bad_file_is_refused_with_its_file_and_line(
    ingest_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["page-a"]\nplatform = "messenger"\nhuman_pause_ms = 0\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{path}:3: \\[\"page-a\"\\] human_pause_ms='0'"):
        IngestSettings.from_env(_env(ingest_env, path, free_port()))
    result = subprocess.run(
        [sys.executable, "-m", "lull.ingest"],
        env={**os.environ, **_env(ingest_env, path, free_port())},
        capture_output=True,
        timeout=WAIT_S,
        check=False,
    )
    assert result.returncode == 2, result.stderr.decode()
    lines = result.stderr.decode().splitlines()
    assert lines == [
        f"lull ingest: bad configuration: {path}:3: [\"page-a\"] human_pause_ms='0': "
        "an integer >= 1"
    ], lines


async def test_a_running_ingest_reloads_on_sighup_and_on_a_change_keeping_a_bad_file_out(
    ingest_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS, encoding="utf-8")
    admin_port = free_port()
    env = _env(ingest_env, path, admin_port, LULL_INGEST_PORT=str(free_port()),
               LULL_LOG_LEVEL="info")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "lull.ingest"], env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output = Output(proc)
    base = f"http://127.0.0.1:{admin_port}"
    try:
        output.wait_for("admin API listening")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            assert await _admin_pause(session, base, "messenger:page-a:u1") == 60_000

            path.write_text(_page_a(0))
            proc.send_signal(signal.SIGHUP)
            output.wait_for("accounts file not reloaded")
            assert await _admin_pause(session, base, "messenger:page-a:u2") == 60_000

            path.write_text(_page_a(45000))
            proc.send_signal(signal.SIGHUP)
            output.wait_for("accounts file reloaded")
            assert await _admin_pause(session, base, "messenger:page-a:u3") == 45_000

            # No signal: the watch sees the file's new modification time (every 5 s).
            path.write_text(_page_a(30000))
            stamp_ns = path.stat().st_mtime_ns + 1_000_000_000
            os.utime(path, ns=(stamp_ns, stamp_ns))
            output.wait_for("accounts file reloaded", count=2)
            assert await _admin_pause(session, base, "messenger:page-a:u4") == 30_000
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output.join()
    text = "".join(output.lines)
    [bad] = [line for line in output.lines if "accounts file not reloaded" in line]
    assert "human_pause_ms='0'" in bad and "SIGHUP" in bad, bad
    assert "the file changed" in text
    assert "Traceback" not in text


async def test_the_send_api_knows_an_account_whose_token_only_the_file_gives(
    ingest_env: dict[str, str], tmp_path: Path
) -> None:
    # page-a's token comes from the file only (a reference ingest checks, never follows);
    # page-b has none anywhere; LULL_ACCESS_TOKENS names another page.
    path = tmp_path / "accounts.toml"
    path.write_text(
        ACCOUNTS.replace('["page-b"]', 'access_token = "${PAGE_A_TOKEN}"\n\n["page-b"]', 1),
        encoding="utf-8",
    )
    admin_port = free_port()
    env = _env(
        ingest_env, path, admin_port, LULL_ACCESS_TOKENS='{"page-z": "token"}', PAGE_A_TOKEN="t"
    )
    app = create_app(IngestSettings.from_env(env))
    serve_admin_port(app)
    send = {"replies": [{"text": "hello"}]}
    async with (
        TestClient(TestServer(app)),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
    ):
        statuses = {}
        for account in ("page-a", "page-b", "page-z"):
            headers = {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": account}
            url = f"http://127.0.0.1:{admin_port}/v1/conversations/messenger:{account}:u1/messages"
            async with session.post(url, json=send, headers=headers) as reply:
                statuses[account] = (reply.status, await reply.text())
    assert statuses["page-a"][0] == 202, statuses
    assert statuses["page-z"][0] == 202, statuses
    assert statuses["page-b"][0] == 422, statuses
    assert "neither LULL_ACCESS_TOKENS nor the accounts file" in statuses["page-b"][1]
