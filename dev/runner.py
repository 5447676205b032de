"""`lull dev`: the whole local stack in one foreground command.

Starts an embedded redis-server when LULL_REDIS_URL is unset and nothing answers on
127.0.0.1:6379, runs each service as a child process with its output tagged, and stops
everything on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from lull.common.loop import new_event_loop
from lull.common.redis_conn import describe
from lull.common.settings import DEFAULT_REDIS_URL, DEV_APP_SECRET
from lull.dev.embedded_redis import EmbeddedRedis, port_answers

THINKING_ECHO = "python:lull.dev.thinking_echo:reply"
DEV_VERIFY_TOKEN = "lull-dev-verify-token"  # noqa: S105  (a published dev default)
SERVICES = ("ingest", "processor", "sender", "fake-graph")
DEV_FAKE_GRAPH_PORT = "8090"
DEV_GRAPH_TOKEN = "lull-dev-graph-token"  # noqa: S105  (accepted by the fake Graph API only)
STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 15.0
DATA_DIR = Path(".lull") / "redis"


def _dev_environ(redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("LULL_VERIFY_TOKEN", DEV_VERIFY_TOKEN)
    env.setdefault("LULL_APP_SECRET", DEV_APP_SECRET)
    env.setdefault("LULL_LOG_FORMAT", "console")
    # Echo after a second's thought: the log then shows the user read and the bot typing.
    env.setdefault("LULL_HANDLER", THINKING_ECHO)
    env.setdefault("LULL_FAKE_GRAPH_PORT", DEV_FAKE_GRAPH_PORT)
    env.setdefault("LULL_GRAPH_API_BASE", f"http://127.0.0.1:{env['LULL_FAKE_GRAPH_PORT']}")
    env.setdefault("LULL_ACCESS_TOKENS", f'{{"*": "{DEV_GRAPH_TOKEN}"}}')
    env["LULL_REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _say(line: str) -> None:
    print(f"[lull dev] {line}", flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull dev` options."""
    parser.add_argument(
        "--services", nargs="+", default=None, help="which services to run (default: all)"
    )


def run(args: argparse.Namespace) -> int:
    """`lull dev`: the local stack in the foreground."""
    return run_dev(services=args.services)


def run_dev(services: list[str] | None = None) -> int:
    """Run the stack until SIGINT/SIGTERM; returns the exit code."""
    chosen = services or list(SERVICES)
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        print(f"lull dev: unknown services {unknown}; known: {list(SERVICES)}", file=sys.stderr)
        return 2
    embedded: EmbeddedRedis | None = None
    redis_url = os.environ.get("LULL_REDIS_URL", "").strip()
    if not redis_url:
        if port_answers("127.0.0.1", 6379):
            redis_url = DEFAULT_REDIS_URL
            _say(f"using the Redis that answers on {redis_url}")
        else:
            embedded = EmbeddedRedis(DATA_DIR).start()
            redis_url = embedded.url
            _say(f"started embedded redis-server at {redis_url}, AOF under {DATA_DIR}/")
    else:
        _say(f"using LULL_REDIS_URL={describe(redis_url)}")
    env = _dev_environ(redis_url)
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_supervise(chosen, env))
    finally:
        loop.close()
        if embedded is not None:
            embedded.stop()
            _say("embedded redis-server stopped")


async def _supervise(services: list[str], env: dict[str, str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    children: dict[str, asyncio.subprocess.Process] = {}
    pumps = []
    for name in services:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *_command(name, env), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        children[name] = proc
        assert proc.stdout is not None
        pumps.append(asyncio.create_task(_pump(name, proc.stdout)))
    await _wait_until_listening(int(env.get("LULL_INGEST_PORT", "8080")), stop)
    _print_banner(env)
    exited = [asyncio.create_task(p.wait()) for p in children.values()]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *exited], return_when=asyncio.FIRST_COMPLETED)
    code = 0 if stop.is_set() else 1
    if not stop.is_set():
        _say("a service exited on its own; stopping the others")
    for proc in children.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in children.items():
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            _say(f"{name} did not stop within {STOP_TIMEOUT_S} s; killing it")
            proc.kill()
            await proc.wait()
    stopper.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)
    _say("stopped")
    return code


async def _wait_until_listening(port: int, stop: asyncio.Event) -> None:
    """Print the banner only once ingest accepts connections (bounded: it may fail)."""
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
    while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
        if port_answers("127.0.0.1", port, 0.1):
            return
        await asyncio.sleep(0.05)


def _command(name: str, env: dict[str, str]) -> list[str]:
    if name == "fake-graph":
        return ["-m", "lull.common.cli", "fake-graph", "--port", env["LULL_FAKE_GRAPH_PORT"]]
    return ["-m", f"lull.{name}"]


async def _pump(name: str, stream: asyncio.StreamReader) -> None:
    tag = f"[{name}] "
    while line := await stream.readline():
        sys.stdout.write(tag + line.decode(errors="replace"))
        sys.stdout.flush()


def _print_banner(env: dict[str, str]) -> None:
    port = env.get("LULL_INGEST_PORT", "8080")
    secret = env["LULL_APP_SECRET"].split(",")[0]
    _say(f"webhook URL:   http://127.0.0.1:{port}/webhook")
    # Only the published dev defaults are printed; an operator's own secrets never are.
    token = env["LULL_VERIFY_TOKEN"]
    _say(f"verify token:  {token if token == DEV_VERIFY_TOKEN else '(your LULL_VERIFY_TOKEN)'}")
    if secret != DEV_APP_SECRET:
        _say("app secret:    (your LULL_APP_SECRET)")
        return
    _say(f"app secret:    {secret}")
    _say("in another terminal, simulate three users typing bursts:")
    _say(f"  {_lull_command()} simulate --url http://127.0.0.1:{port}/webhook "
         f"--app-secret {secret} --users 3 --messages-per-user 3 --gap-ms 800")  # fmt: skip
    _say(
        f"replies appear in the sender's log and at http://127.0.0.1:{env['LULL_FAKE_GRAPH_PORT']}/_sent"
    )


def _lull_command() -> str:
    """How to run `lull` from any terminal: the venv's script, even when the venv is not active."""
    script = Path(sys.executable).parent / "lull"
    return str(script) if script.exists() else f"{sys.executable} -m common.cli"
