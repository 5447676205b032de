"""No secret is ever logged: the real `lull ingest` and `lull sender`, at debug level, driven
through good and bad requests, a Redis outage and bad configuration; every byte they print
is searched for every configured secret and token."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from lull.common.signing import sign
from lull.common.store.keys import Keys
from lull.dev.embedded_redis import EmbeddedRedis, free_port
from lull.dev.fake_graph import FAKE_GRAPH, create_fake_graph_app
from lull.ingest.service import main as ingest_main
from lull.processor.service import main as processor_main
from lull.sender.service import main as sender_main
from tests.hostile.bodies import text_body
from tests.sender.conftest import emit
from tests.sender.fake_bot import FakeBot

REDIS_PASSWORD = "redis-password-Jx81"
APP_SECRET_NEW, APP_SECRET_OLD = "app-secret-new-Q7v2", "app-secret-old-Z3k9"
VERIFY_TOKEN = "verify-token-K9w4"
HANDLER_SECRET = "handler-secret-M5r8"
PAGE_TOKEN, WA_TOKEN = "page-token-T2b6", "wa-token-H4n1"
ADMIN_TOKEN = "admin-token-R6p3-0123456789"
SECRETS = (REDIS_PASSWORD, APP_SECRET_NEW, APP_SECRET_OLD, VERIFY_TOKEN, HANDLER_SECRET,
           PAGE_TOKEN, WA_TOKEN, ADMIN_TOKEN)  # fmt: skip
TIMEOUT = aiohttp.ClientTimeout(total=5)
STOP_TIMEOUT_S = 15


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own that wants a password."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False,
                           extra_args=("--requirepass", REDIS_PASSWORD)).start()  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


def url_of(server: EmbeddedRedis) -> str:
    return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"


def start(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`lull <command>` with env, everything it prints going to log."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lull.cli", command],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def until(check: object, what: str, timeout_s: float = 20) -> None:
    """Poll a child process's observable state until check() holds (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await check():  # type: ignore[operator]
                return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout_s} s")


def assert_no_secret(text: str) -> None:
    assert text.strip(), "nothing was captured"
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} appears in the output"


def config_error(command: str, env: dict[str, str]) -> str:
    """What `lull <command>` prints when it refuses its configuration (exit 2)."""
    done = subprocess.run(
        [sys.executable, "-m", "lull.cli", command],
        env={**os.environ, **env},
        capture_output=True,
        timeout=30,
        check=False,
    )
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 2, output
    assert "bad configuration" in output
    return output


@pytest.mark.slow
async def test_ingest_never_logs_secrets(
    locked_redis: EmbeddedRedis, namespace: str, tmp_path: Path
) -> None:
    port, metrics_port, admin_port = free_port(), free_port(), free_port()
    env = {
        "LULL_ADMIN_TOKEN": ADMIN_TOKEN, "LULL_ADMIN_PORT": str(admin_port),
        "LULL_REDIS_URL": url_of(locked_redis), "LULL_NAMESPACE": namespace,
        "LULL_APP_SECRET": f"{APP_SECRET_NEW},{APP_SECRET_OLD}", "LULL_VERIFY_TOKEN": VERIFY_TOKEN,
        "LULL_INGEST_PORT": str(port), "LULL_INGEST_METRICS_PORT": str(metrics_port),
        "LULL_LOG_LEVEL": "debug", "LULL_LOG_FORMAT": "json", "LULL_INGEST_REDIS_TIMEOUT_MS": "500",
    }  # fmt: skip
    log = tmp_path / "lull.ingest.log"
    proc = start("ingest", env, log)
    base = f"http://127.0.0.1:{port}"
    body = text_body("messenger", "u1", "m1", "hello", 1763800000000)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:

            async def ready() -> bool:
                async with http.get(f"{base}/readyz") as response:
                    return response.status == 200

            await until(ready, "ingest ready")
            handshake = {"hub.mode": "subscribe", "hub.challenge": "42"}
            for token, status in (("wrong-token", 403), (VERIFY_TOKEN, 200)):
                params = {**handshake, "hub.verify_token": token}
                async with http.get(f"{base}/webhook", params=params) as response:
                    assert response.status == status
            for headers, status in (
                ({}, 401),
                ({"X-Hub-Signature-256": sign("guessed", body)}, 401),
                ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, 401),
                ({"X-Hub-Signature-256": sign(APP_SECRET_NEW, body)}, 200),
                ({"X-Hub-Signature-256": sign(APP_SECRET_OLD, body)}, 200),
            ):
                async with http.post(f"{base}/webhook", data=body, headers=headers) as response:
                    assert response.status == status
            junk = b'{"object": 1}'
            headers = {"X-Hub-Signature-256": sign(APP_SECRET_NEW, junk)}
            async with http.post(f"{base}/webhook", data=junk, headers=headers) as response:
                assert response.status == 400
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                assert response.status == 200
                assert_no_secret(await response.text())
            admin = f"http://127.0.0.1:{admin_port}/conversations/messenger:p1:u1"
            for token, status in (("guessed", 401), (ADMIN_TOKEN, 200)):
                auth = {"Authorization": f"Bearer {token}"}
                async with http.post(f"{admin}/pause", headers=auth) as response:
                    assert response.status == status
                    assert_no_secret(await response.text())
            locked_redis.stop()
            headers = {"X-Hub-Signature-256": sign(APP_SECRET_NEW, body)}
            async with http.post(f"{base}/webhook", data=body, headers=headers) as response:
                assert response.status == 503
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503
    finally:
        code = stop(proc)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert '"webhook stored"' in output  # debug lines were on
    assert "webhook not stored" in output  # and so was the outage
    assert_no_secret(output)


CONFIG_SECRETS = {
    "LULL_APP_SECRET": APP_SECRET_NEW, "LULL_VERIFY_TOKEN": VERIFY_TOKEN,
    "LULL_HANDLER_SECRET": HANDLER_SECRET, "LULL_HANDLER": "echo",
    "LULL_ACCESS_TOKENS": orjson.dumps({"p1": PAGE_TOKEN}).decode(),
    "LULL_REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",
    "LULL_ADMIN_TOKEN": ADMIN_TOKEN,
}  # fmt: skip
BAD_CONFIGS = [
    (ingest_main, {"LULL_APP_SECRET": " , "}),
    (ingest_main, {"LULL_VERIFY_TOKEN": ""}),
    (ingest_main, {"LULL_SHARDS": "many"}),
    (ingest_main, {"LULL_INGEST_METRICS_PORT": "x"}),
    (ingest_main, {"LULL_ADMIN_PORT": "8080"}),
    (sender_main, {"LULL_ACCESS_TOKENS": f"{{p1: {PAGE_TOKEN}"}),
    (sender_main, {"LULL_ACCESS_TOKENS": f'{{"p1": "{PAGE_TOKEN} x"}}'}),
    (sender_main, {"LULL_ACCESS_TOKENS": f'["{PAGE_TOKEN}"]'}),
    (sender_main, {"LULL_HANDLER_TIMEOUT_MS": "never"}),
    (processor_main, {"LULL_WINDOW_MS": "soon"}),
]


@pytest.mark.parametrize(
    ("main", "bad"), BAD_CONFIGS, ids=[f"{m.__module__}:{next(iter(b))}" for m, b in BAD_CONFIGS]
)
def test_configuration_errors_never_show_secrets(
    main: Callable[[Mapping[str, str]], int],
    bad: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main({**CONFIG_SECRETS, **bad}) == 2
    captured = capsys.readouterr()
    assert "bad configuration" in captured.err
    assert_no_secret(captured.out + captured.err)


def test_the_real_command_refuses_a_bad_secret_quietly() -> None:
    assert_no_secret(config_error("ingest", {**CONFIG_SECRETS, "LULL_APP_SECRET": ","}))


@pytest.mark.slow
async def test_sender_never_logs_secrets(
    locked_redis: EmbeddedRedis, namespace: str, tmp_path: Path
) -> None:
    # The fake Graph API knows the WhatsApp token and another page token: one send is
    # accepted, one refused for its token (190), both logged.
    graph_server = TestServer(create_fake_graph_app({"p1": "the-real-page-token", "wa1": WA_TOKEN}))
    await graph_server.start_server()
    bot = await FakeBot(HANDLER_SECRET).start()
    env = {
        "LULL_REDIS_URL": url_of(locked_redis), "LULL_NAMESPACE": namespace,
        "LULL_HANDLER": bot.url, "LULL_HANDLER_SECRET": HANDLER_SECRET,
        "LULL_GRAPH_API_BASE": str(graph_server.make_url("")).rstrip("/"),
        "LULL_ACCESS_TOKENS": orjson.dumps({"p1": PAGE_TOKEN, "wa1": WA_TOKEN}).decode(),
        "LULL_SENDER_METRICS_PORT": "0", "LULL_LOG_LEVEL": "debug", "LULL_LOG_FORMAT": "json",
        "LULL_SEND_BACKOFF_BASE_MS": "1", "LULL_SEND_BACKOFF_MAX_MS": "5",
        "LULL_RATE_GLOBAL": "off", "LULL_RATE_PER_USER": "off", "LULL_SEND_RATE_PER_USER": "off",
    }  # fmt: skip
    client = aioredis.Redis.from_url(url_of(locked_redis), socket_timeout=5)
    keys = Keys(namespace)
    await emit(client, keys, "u1", 1, "to messenger", account="p1")
    await emit(client, keys, "15550000002", 1, "to whatsapp", platform="whatsapp", account="wa1")
    log = tmp_path / "lull.sender.log"
    proc = start("sender", env, log)
    graph = graph_server.app[FAKE_GRAPH]
    try:

        async def settled() -> bool:
            return len(graph.sent) == 1 and await client.xlen(keys.dead()) == 1

        await until(settled, "one batch sent, one dead-lettered")
        assert len(bot.received) == 2  # the handler verified both signatures
    finally:
        code = stop(proc)
        await client.aclose()
        await bot.stop()
        await graph_server.close()
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "190" in output  # the refused send was logged
    assert_no_secret(output)
