"""Mistakes at start, as an operator meets them: real service processes, their output read
line by line with deadlines (issue 13: a typo, several bad values, a bot module that does
not import, a Redis that does not answer, Ctrl-C)."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from lull.dev.embedded_redis import free_port
from tests.output import Child, clean_environ

# A service that waits for Redis or is told to stop exits within this (SIGTERM's bound).
STOP_BOUND_S = 10.0
# Python start-up on a busy 2-core machine, generously.
START_S = 30.0
NEVER_IN_OUTPUT = ("Traceback", "Unclosed", "hunter2")
SERVICES = ("ingest", "processor", "sender")
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=5)


def _ports() -> dict[str, str]:
    return {
        "LULL_INGEST_PORT": str(free_port()),
        "LULL_INGEST_METRICS_PORT": str(free_port()),
        "LULL_PROCESSOR_METRICS_PORT": str(free_port()),
        "LULL_SENDER_METRICS_PORT": str(free_port()),
    }


def _env(**variables: str) -> dict[str, str]:
    defaults = {"LULL_APP_SECRET": "s", "LULL_VERIFY_TOKEN": "t", "LULL_HANDLER": "echo",
                "LULL_LOG_FORMAT": "json", **_ports()}  # fmt: skip
    return clean_environ(**{**defaults, **variables})


def _closed_redis_url() -> str:
    # Nothing listens there; the password must never be printed.
    return f"redis://:hunter2@127.0.0.1:{free_port()}/0"


async def _run_to_exit(module: str, env: dict[str, str]) -> tuple[int, list[str]]:
    child = await Child.start("-m", f"lull.{module}", env=env)
    try:
        code = await child.finish(START_S)
    finally:
        await child.kill()
    return code, [text for _, text in child.lines]


@pytest.mark.parametrize("module", SERVICES)
async def test_every_problem_is_one_line_in_one_start(module: str) -> None:
    env = _env(LULL_WINDOW_SM="100", lull_window_ms="100", LULL_SHARDS="zero",
               LULL_LOG_LEVEL="loud", LULL_REDIS_URL=_closed_redis_url())  # fmt: skip
    code, lines = await _run_to_exit(module, env)
    assert code == 2
    prefix = f"lull {module}: bad configuration: "
    assert lines == [
        prefix + "LULL_WINDOW_SM: no lull service reads this variable; "
        "did you mean LULL_WINDOW_MS?",
        prefix + "lull_window_ms: no lull service reads this variable; "
        "did you mean LULL_WINDOW_MS? (names are upper case)",
        prefix + "LULL_SHARDS='zero': an integer >= 1 and <= 16384",
        prefix + "LULL_LOG_LEVEL='loud': one of debug, info, warning, error",
    ]


BROKEN_BOTS = {
    # module file text -> what the one line must say
    "import no_such_dependency_of_the_bot\n": "raised ModuleNotFoundError: No module named "
    "'no_such_dependency_of_the_bot' (at {path}:1)",
    "x = 1\nraise RuntimeError('no API key')\n": "raised RuntimeError: no API key (at {path}:2)",
    "def handle(:\n": "raised SyntaxError",
}


@pytest.mark.parametrize("source", sorted(BROKEN_BOTS))
async def test_a_bot_module_that_fails_to_import_is_one_line(source: str, tmp_path: Path) -> None:
    bot = tmp_path / "brokenbot.py"
    bot.write_text(source)
    env = _env(LULL_HANDLER="python:brokenbot:handle", PYTHONPATH=str(tmp_path),
               LULL_REDIS_URL=_closed_redis_url())  # fmt: skip
    code, lines = await _run_to_exit("sender", env)
    assert code == 2
    [line] = lines
    assert line.startswith(
        "lull sender: bad configuration: LULL_HANDLER='python:brokenbot:handle': "
        "importing 'brokenbot' "
    )
    assert BROKEN_BOTS[source].format(path=bot) in line


async def test_a_bot_module_not_found_names_pythonpath_and_the_fix(tmp_path: Path) -> None:
    env = _env(LULL_HANDLER="python:mybot_not_on_the_path:handle", PYTHONPATH=str(tmp_path),
               LULL_REDIS_URL=_closed_redis_url())  # fmt: skip
    code, lines = await _run_to_exit("sender", env)
    output = "\n".join(lines)
    assert code == 2
    assert lines == [
        "lull sender: bad configuration: LULL_HANDLER='python:mybot_not_on_the_path:handle': "
        f"no module named 'mybot_not_on_the_path' (not in PYTHONPATH={tmp_path}, nor installed "
        "beside lull): set PYTHONPATH to the folder that holds mybot_not_on_the_path.py or "
        "mybot_not_on_the_path/"
    ], output
    # Issue 21: not the whole sys.path, with lull's own site-packages and editable finders.
    for word in NEVER_IN_OUTPUT:
        assert word not in output


@pytest.mark.parametrize("module", SERVICES)
async def test_an_unreachable_redis_is_named_and_ctrl_c_stops_the_wait(module: str) -> None:
    url = _closed_redis_url()
    masked = url.replace("hunter2", "****")
    env = _env(LULL_REDIS_URL=url)
    child = await Child.start("-m", f"lull.{module}", env=env)
    try:
        line = await child.line_with("LULL_REDIS_URL", "retrying", timeout_s=START_S)
        assert f'"redis":"{masked}"' in line
        assert '"level":"warning"' in line
        if module == "ingest":  # it listens, but says it is not ready (and Meta gets 503s)
            readyz = f"http://127.0.0.1:{env['LULL_INGEST_PORT']}/readyz"
            async with (
                aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session,
                session.get(readyz) as response,
            ):
                assert response.status == 503
        child.interrupt()
        code = await child.finish(STOP_BOUND_S)
    finally:
        await child.kill()
    assert code == 0, child.output
    for word in NEVER_IN_OUTPUT:
        assert word not in child.output
    # Each service also names the Redis it tries before the first retry.
    starting = child.first(masked)
    assert starting is not None and "retrying" not in starting[1], child.output


@pytest.mark.slow
@pytest.mark.parametrize("module", SERVICES)
async def test_ctrl_c_stops_a_running_service_without_a_traceback(
    module: str, base_env: dict[str, str]
) -> None:
    env = _env(**{**base_env, "LULL_LOG_LEVEL": "info"})
    child = await Child.start("-m", f"lull.{module}", env=env)
    try:
        ready = {"ingest": "ingest ready", "processor": "processor starting",
                 "sender": "sender starting"}[module]  # fmt: skip
        await child.line_with(ready, timeout_s=START_S)
        child.interrupt()
        code = await child.finish(STOP_BOUND_S)
    finally:
        await child.kill()
    assert code == 0, child.output
    assert f"{module} stopped" in child.output
    for word in NEVER_IN_OUTPUT:
        assert word not in child.output


@pytest.mark.parametrize("module", ["processor", "sender"])
async def test_a_metrics_port_in_use_is_one_line(module: str, base_env: dict[str, str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        setting = f"LULL_{module.upper()}_METRICS_PORT"
        code, lines = await _run_to_exit(module, _env(**{**base_env, setting: port}))
    output = "\n".join(lines)
    assert code == 1, output
    assert lines[-1].startswith(f"lull {module}: cannot start: cannot serve /metrics on ")
    assert "address already in use" in lines[-1]
    assert "Traceback" not in output
