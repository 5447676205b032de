"""Services as operators run them: real processes, signals, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from lull.common.store.keys import Keys
from lull.dev.embedded_redis import EmbeddedRedis, free_port, port_answers
from tests.processor.test_processor import ingest, messenger_body
from tests.processor.windowing import batches, redis_now_ms

STOP_BOUND_S = 10


def _start(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", *f"lull.{module}".split()],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.parametrize("module", ["ingest", "processor", "sender"])
def test_bad_configuration_stops_with_one_line(module: str) -> None:
    env = {"LULL_SHARDS": "zero", "LULL_APP_SECRET": "s", "LULL_VERIFY_TOKEN": "t",
           "LULL_HANDLER": "echo"}  # fmt: skip
    proc = _start(module, env)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    lines = output.decode().strip().splitlines()
    assert lines == [f"lull {module}: bad configuration: LULL_SHARDS='zero': an integer >= 1 "
                     "and <= 16384"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("module", ["ingest", "processor", "sender"])
def test_sigterm_exits_zero_within_bound(module: str, base_env: dict[str, str]) -> None:
    port = free_port()
    env = {
        **base_env, "LULL_APP_SECRET": "s", "LULL_VERIFY_TOKEN": "t", "LULL_HANDLER": "echo",
        "LULL_INGEST_PORT": str(port), "LULL_PROCESSOR_METRICS_PORT": str(port),
        "LULL_SENDER_METRICS_PORT": str(port), "LULL_LOG_LEVEL": "info",
        "LULL_INGEST_METRICS_PORT": "0",
    }  # fmt: skip
    proc = _start(module, env)
    try:
        deadline = time.monotonic() + 20
        while not port_answers("127.0.0.1", port) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
            time.sleep(0.05)  # a child process starting up, bounded above
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=STOP_BOUND_S + 5)
        assert time.monotonic() - started < STOP_BOUND_S
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output.decode()[-2000:]
    assert b"stopped" in output


async def test_lull_flush_all_emits_open_windows_now(
    redis: aioredis.Redis, base_env: dict[str, str]
) -> None:
    keys = Keys(base_env["LULL_NAMESPACE"])
    now = await redis_now_ms(redis)
    for user in ("a", "b"):
        await ingest(redis, keys, messenger_body(user, [f"{user}1"], now))
    env = {**base_env, "LULL_WINDOW_MS": "3600000", "LULL_MAX_WAIT_MS": "3600000",
           "LULL_PROCESSOR_METRICS_PORT": "0"}  # fmt: skip
    from lull.processor.app import Processor  # noqa: PLC0415
    from lull.processor.settings import ProcessorSettings  # noqa: PLC0415

    # Apply (windows stay open for an hour), then flush through the real command.
    await Processor(redis, ProcessorSettings.from_env(env)).consumer.run_until_idle()
    assert await batches(redis, keys) == []
    # At the default log level too (an env file's info), the answer is all it prints: no
    # "batch emitted" log line beside it (issue 21). Output is stdout and stderr merged.
    proc = _start(
        "cli flush --conversation messenger:106000000000001:a",
        {**env, "LULL_LOG_LEVEL": "info"},
    )
    assert proc.communicate(timeout=30)[0].decode().strip() == "emitted 1 batch(es)"
    proc = _start("cli flush --all", env)
    assert proc.communicate(timeout=30)[0].decode().strip() == "emitted 1 batch(es)"
    assert sorted(b["user_id"] for b in await batches(redis, keys)) == ["a", "b"]


@pytest.mark.slow
def test_processor_waits_for_redis_instead_of_crashing(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**base_env, "LULL_REDIS_URL": f"redis://127.0.0.1:{port}/0",
           "LULL_PROCESSOR_METRICS_PORT": "0", "LULL_LOG_LEVEL": "info"}  # fmt: skip
    proc = _start("processor", env)
    try:
        time.sleep(1.0)  # a child process meeting a Redis that is not there yet, bounded
        assert proc.poll() is None, "the processor exited while Redis was down"
        server = EmbeddedRedis(tmp_path, appendonly=False, port=port).start()
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if any(g["name"] == b"processor" for g in _groups(server.url, base_env)):
                    break
                time.sleep(0.05)  # the child retrying on its own backoff, bounded
            else:
                pytest.fail("the processor never created its group after Redis came up")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=STOP_BOUND_S + 5)
            server.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


def _groups(url: str, env: dict[str, str]) -> list[dict[str, object]]:
    import redis as sync_redis  # noqa: PLC0415

    client = sync_redis.Redis.from_url(url, socket_timeout=2)
    try:
        return client.xinfo_groups(Keys(env["LULL_NAMESPACE"]).inbound())
    except sync_redis.ResponseError:
        return []
    finally:
        client.close()
