"""`lull dev` when something is wrong at start: a Redis that does not answer, a service
that dies at once, Ctrl-C while the stack comes up. A real process tree, read line by line."""

from __future__ import annotations

import socket

import pytest

from lull.dev.embedded_redis import free_port
from tests.output import Child, clean_environ

START_S = 30.0
STOP_S = 30.0
# Issue 13: a service that dies is noticed within 1 s (it took 13 s).
NOTICE_S = 1.0


def _dev_env(**variables: str) -> dict[str, str]:
    ports = {
        "LULL_INGEST_PORT": str(free_port()),
        "LULL_INGEST_METRICS_PORT": str(free_port()),
        "LULL_PROCESSOR_METRICS_PORT": str(free_port()),
        "LULL_SENDER_METRICS_PORT": str(free_port()),
        "LULL_FAKE_GRAPH_PORT": str(free_port()),
    }
    return clean_environ(**{**ports, **variables})


async def test_an_unreachable_redis_url_is_said_plainly() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    child = await Child.start("-m", "lull.cli", "dev", env=_dev_env(LULL_REDIS_URL=url))
    try:
        code = await child.finish(START_S)
    finally:
        await child.kill()
    assert code == 1
    masked = url.replace("hunter2", "****")
    assert child.first("[lull dev]", f"Redis at {masked} (LULL_REDIS_URL) does not answer")
    assert "webhook URL" not in child.output  # no banner
    assert "hunter2" not in child.output and "Traceback" not in child.output


async def test_bad_configuration_is_checked_once_each_problem_once() -> None:
    # Issue 21: the services each refused these, the runner showed only the first to die,
    # twice, and exited 1.
    env = _dev_env(LULL_WINDOW_MS="abc", LULL_MAX_WAIT_MS="-5", LULL_WINDOW_SM="1",
                   LULL_HANDLER="python:no_such_bot_module:handle")  # fmt: skip
    child = await Child.start("-m", "lull.cli", "dev", env=env)
    try:
        code = await child.finish(START_S)
    finally:
        await child.kill()
    assert code == 2, child.output
    prefix = "lull dev: bad configuration: "
    assert [text for _, text in child.lines] == [
        prefix + "LULL_WINDOW_SM: no lull service reads this variable; did you mean "
        "LULL_WINDOW_MS?",
        prefix + "LULL_WINDOW_MS='abc': an integer >= 1 and <= 86400000",
        prefix + "LULL_MAX_WAIT_MS='-5': an integer >= 1 and <= 86400000",
        prefix + child.lines[3][1].removeprefix(prefix),
    ], child.output  # nothing started: no service's line, no Redis looked for
    assert child.lines[3][1].startswith(
        prefix + "LULL_HANDLER='python:no_such_bot_module:handle': no module named "
    )


@pytest.mark.slow
async def test_a_service_that_dies_at_once_stops_the_stack_within_a_second(
    base_env: dict[str, str],
) -> None:
    # Only the processor fails to start (its metrics port is taken); the others start.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        child = await Child.start(
            "-m", "lull.cli", "dev",
            env=_dev_env(**base_env, LULL_PROCESSOR_METRICS_PORT=port),
        )  # fmt: skip
        try:
            code = await child.finish(START_S + STOP_S)
        finally:
            await child.kill()
    assert code == 1, child.output
    died = child.first("[processor] lull processor: cannot start: cannot serve /metrics")
    noticed = child.first("[lull dev] processor exited with code 1")
    assert died is not None and noticed is not None, child.output
    assert noticed[0] - died[0] < NOTICE_S
    # The child's own line is shown again, last, where the newcomer looks.
    assert child.first("[lull dev]   processor| lull processor: cannot start: ")
    assert "webhook URL" not in child.output  # the banner waits for every service
    assert "Traceback" not in child.output
    assert child.lines[-1][1] == "[lull dev] stopped"


@pytest.mark.slow
async def test_ctrl_c_while_the_stack_starts_ends_without_a_traceback(
    base_env: dict[str, str],
) -> None:
    env = _dev_env(**{**base_env, "LULL_LOG_LEVEL": "info"})
    child = await Child.start("-m", "lull.cli", "dev", env=env)
    try:
        # Some child has printed: services are starting, none is ready.
        await child.line_with("[processor]", timeout_s=START_S)
        child.interrupt()
        code = await child.finish(STOP_S)
    finally:
        await child.kill()
    assert code == 0, child.output
    for word in ("Traceback", "Unclosed", "KeyboardInterrupt"):
        assert word not in child.output
    assert child.lines[-1][1] == "[lull dev] stopped"
