"""The sender's start line says where batches go: the handler's URL, without a secret."""

from __future__ import annotations

from lull.dev.embedded_redis import free_port
from tests.output import Child, clean_environ

START_S = 30.0
STOP_S = 10.0


async def test_the_start_line_names_the_bot_url_without_secrets(
    base_env: dict[str, str],
) -> None:
    port = free_port()
    env = clean_environ(
        **{
            **base_env,
            "LULL_LOG_LEVEL": "info",
            "LULL_HANDLER": f"http://botuser:hunter2@127.0.0.1:{port}/lull?token=sesame",
            "LULL_SENDER_METRICS_PORT": str(free_port()),
        }
    )
    child = await Child.start("-m", "lull.sender", env=env)
    try:
        line = await child.line_with("sender starting", timeout_s=START_S)
        child.interrupt()
        assert await child.finish(STOP_S) == 0, child.output
    finally:
        await child.kill()
    assert f'"handler_target":"http://127.0.0.1:{port}/lull"' in line
    for secret in ("hunter2", "sesame", "botuser"):
        assert secret not in child.output
