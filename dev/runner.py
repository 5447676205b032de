"""`lull dev`: the whole local stack in one foreground command.

Checks every service's configuration first (each problem once, exit 2). Starts an
embedded redis-server when LULL_REDIS_URL is unset and nothing answers on
127.0.0.1:6379 (and stops at once, saying so, when LULL_REDIS_URL is set and does not
answer), runs each service as a child process with its output tagged, prints the banner
once every service answers ready, stops everything when one dies (showing its last lines)
and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

import aiohttp
import redis as sync_redis

from lull.common.redis_conn import describe
from lull.common.settings import DEFAULT_REDIS_URL, DEV_APP_SECRET
from lull.dev.embedded_redis import EmbeddedRedis, free_port, port_answers

THINKING_ECHO = "python:lull.dev.thinking_echo:reply"
DEV_VERIFY_TOKEN = "lull-dev-verify-token"  # noqa: S105  (a published dev default)
SERVICES = ("ingest", "processor", "sender", "fake-graph")
DEV_FAKE_GRAPH_PORT = "8090"
DEV_GRAPH_TOKEN = "lull-dev-graph-token"  # noqa: S105  (accepted by the fake Graph API only)
DEV_MEDIA_SECRET = "lull-dev-media-secret"  # noqa: S105  (a published dev default)
STOP_TIMEOUT_S = 10.0
# How often lull dev says which services are not ready yet, and why.
READY_REPORT_S = 10.0
READY_POLL_S = 0.1
READY_POLL_TIMEOUT_S = 1.0
REDIS_CHECK_S = 2.0
# The lines of a dead service shown again when it stops the stack.
TAIL_LINES = 15
TAIL_WAIT_S = 2.0
DATA_DIR = Path(".lull") / "redis"
DEV_ACCOUNTS = Path(__file__).resolve().parent / "accounts.toml"


def _dev_environ(redis_url: str) -> dict[str, str]:
    """The children's environment: the caller's, with the dev defaults for what it leaves
    unset. An empty redis_url leaves LULL_REDIS_URL unset (the services' default)."""
    env = dict(os.environ)
    env.setdefault("LULL_VERIFY_TOKEN", DEV_VERIFY_TOKEN)
    env.setdefault("LULL_APP_SECRET", DEV_APP_SECRET)
    env.setdefault("LULL_LOG_FORMAT", "console")
    if "LULL_HANDLER" not in env and "LULL_ACCOUNTS" not in env:
        # Two accounts, each with its window and bot; a LULL_HANDLER given (your bot) is
        # every account's.
        env["LULL_ACCOUNTS"] = str(DEV_ACCOUNTS)
    # Echo after a second's thought: the log then shows the user read and the bot typing.
    env.setdefault("LULL_HANDLER", THINKING_ECHO)
    env.setdefault("LULL_FAKE_GRAPH_PORT", DEV_FAKE_GRAPH_PORT)
    if "LULL_GRAPH_API_BASE" not in env:
        fake = f"http://127.0.0.1:{env['LULL_FAKE_GRAPH_PORT']}"
        env["LULL_GRAPH_API_BASE"] = fake
        # Media links and voice notes against the fake (`lull simulate --media`): the fake
        # Graph API holds the demo media and answers transcriptions; the media server takes
        # a free port, so two stacks on one machine never fight over it.
        env.setdefault("LULL_MEDIA_SECRET", DEV_MEDIA_SECRET)
        env.setdefault("LULL_MEDIA_PORT", str(free_port()))
        env.setdefault("LULL_TRANSCRIBE_URL", f"{fake}/v1/audio/transcriptions")
    env.setdefault("LULL_ACCESS_TOKENS", f'{{"*": "{DEV_GRAPH_TOKEN}"}}')
    if redis_url:
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
    """Run the stack until SIGINT/SIGTERM; returns the exit code. Ctrl-C at any moment,
    even before the stack is up, stops it without a traceback."""
    try:
        return _run_dev(services)
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


def _run_dev(services: list[str] | None) -> int:
    chosen = services or list(SERVICES)
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        print(f"lull dev: unknown services {unknown}; known: {list(SERVICES)}", file=sys.stderr)
        return 2
    redis_url = os.environ.get("LULL_REDIS_URL", "").strip()
    # Before any Redis is looked for or started: a bad setting is the first thing to fix.
    checked = subprocess.run(  # noqa: S603  (our own interpreter and module)
        [sys.executable, "-m", "lull.dev.config_check", *chosen],
        env=_dev_environ(redis_url),
        check=False,
        preexec_fn=_ignore_ctrl_c,  # Ctrl-C stops lull dev, which ends the check quietly
    )
    if checked.returncode != 0:
        return checked.returncode
    embedded: EmbeddedRedis | None = None
    if not redis_url:
        if port_answers("127.0.0.1", 6379):
            redis_url = DEFAULT_REDIS_URL
            _say(f"using the Redis that answers on {redis_url}")
        else:
            embedded = EmbeddedRedis(DATA_DIR).start()
            redis_url = embedded.url
            _say(f"started embedded redis-server at {redis_url}, AOF under {DATA_DIR}/")
    else:
        problem = redis_problem(redis_url)
        if problem is not None:
            _say(
                f"Redis at {describe(redis_url)} (LULL_REDIS_URL) does not answer: {problem}. "
                "Start that Redis or fix LULL_REDIS_URL; unset it and lull dev starts one."
            )
            return 1
        _say(f"using LULL_REDIS_URL={describe(redis_url)}")
    env = _dev_environ(redis_url)
    try:
        # asyncio's own loop, not uvloop: libuv's spawn resets every signal in the child after
        # preexec_fn, and the children must start with SIGINT ignored (_ignore_ctrl_c).
        with asyncio.Runner() as runner:
            return runner.run(_supervise(chosen, env))
    finally:
        if embedded is not None:
            embedded.stop()
            _say("embedded redis-server stopped")


def redis_problem(url: str) -> str | None:
    """Why the Redis at url does not answer a PING (None: it does), within REDIS_CHECK_S."""
    client = sync_redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_CHECK_S, socket_timeout=REDIS_CHECK_S
    )
    try:
        client.ping()
    except (sync_redis.RedisError, OSError) as exc:
        return (str(exc) or type(exc).__name__).rstrip(".")
    finally:
        client.close()
    return None


class _Child:
    """One service's process and the last lines it printed (shown again if it dies)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        assert proc.stdout is not None
        self.pump = asyncio.create_task(self._pump(proc.stdout))
        self.exited = asyncio.create_task(proc.wait())

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        tag = f"[{self.name}] "
        while line := await stream.readline():
            text = line.decode(errors="replace")
            self.tail.append(text.rstrip("\n"))
            sys.stdout.write(tag + text)
            sys.stdout.flush()


def _ignore_ctrl_c() -> None:
    """In a child, before exec: a terminal's Ctrl-C goes to the whole process group, and a
    child still importing its modules would die of it with a KeyboardInterrupt traceback.
    A SIGINT ignored at exec stays ignored until the service installs its own handler (Python
    installs none over an inherited SIG_IGN); lull dev stops the children with SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def _supervise(services: list[str], env: dict[str, str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started = loop.time()
    children: dict[str, _Child] = {}
    try:
        for name in services:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *_command(name, env), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_ignore_ctrl_c,
            )  # fmt: skip
            children[name] = _Child(name, proc)
        stopper = asyncio.create_task(stop.wait())
        exits = [child.exited for child in children.values()]
        ready = asyncio.create_task(_until_ready(services, env))
        # A child that dies while the others start is noticed at once, not after a timeout.
        await asyncio.wait([stopper, ready, *exits], return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and not any(e.done() for e in exits) and not stop.is_set():
            ready.result()  # a failed readiness check surfaces; no banner over it
            _print_banner(env)
            await asyncio.wait([stopper, *exits], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        stopper.cancel()
        code = 0
        if not stop.is_set():
            code = 1
            await _report_death(children, loop.time() - started)
    finally:
        await _stop_all(children)
    _say("stopped")
    return code


async def _report_death(children: dict[str, _Child], elapsed_s: float) -> None:
    for child in children.values():
        if child.proc.returncode is None:
            continue
        # The rest of its output is in the pipe still: read it before showing the tail.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(child.pump), TAIL_WAIT_S)
        _say(
            f"{child.name} exited with code {child.proc.returncode} after {elapsed_s:.1f} s; "
            "stopping the others. Its last lines:"
        )
        for line in child.tail:
            _say(f"  {child.name}| {line}")
        return


async def _stop_all(children: dict[str, _Child]) -> None:
    for child in children.values():
        if child.proc.returncode is None:
            child.proc.send_signal(signal.SIGTERM)
    for name, child in children.items():
        try:
            await asyncio.wait_for(child.proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            _say(f"{name} did not stop within {STOP_TIMEOUT_S} s; killing it")
            child.proc.kill()
            await child.proc.wait()
    await asyncio.gather(*(child.pump for child in children.values()), return_exceptions=True)


def _ready_urls(services: list[str], env: dict[str, str]) -> dict[str, str]:
    """Where each service says it is ready: ingest's /readyz (Redis answers), the
    processor's and sender's /readyz on their metrics ports (served once they started;
    a port of 0 has none, then the process being up is all we can know), the fake's /_sent."""
    metrics_host = _local(env.get("LULL_METRICS_HOST", "127.0.0.1"))
    ingest_host = _local(env.get("LULL_INGEST_HOST", "127.0.0.1"))
    ports = {
        "ingest": (ingest_host, env.get("LULL_INGEST_PORT", "8080"), "/readyz"),
        "processor": (metrics_host, env.get("LULL_PROCESSOR_METRICS_PORT", "9101"), "/readyz"),
        "sender": (metrics_host, env.get("LULL_SENDER_METRICS_PORT", "9102"), "/readyz"),
        "fake-graph": ("127.0.0.1", env["LULL_FAKE_GRAPH_PORT"], "/_sent"),
    }
    return {
        name: f"http://{host}:{port}{path}"
        for name, (host, port, path) in ports.items()
        if name in services and port.strip() != "0"
    }


def _local(host: str) -> str:
    # A service bound to every address answers on loopback; the runner asks there.
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104


async def _until_ready(services: list[str], env: dict[str, str]) -> None:
    """Return once every service answers ready; say every READY_REPORT_S who is not yet
    and why (Redis not answering shows here), instead of waiting silently."""
    waiting = _ready_urls(services, env)
    why: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    report_at = loop.time() + READY_REPORT_S
    timeout = aiohttp.ClientTimeout(total=READY_POLL_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while waiting:
            for name, url in list(waiting.items()):
                why[name] = await _not_ready(session, url)
                if not why[name]:
                    del waiting[name]
            if waiting and loop.time() >= report_at:
                report_at = loop.time() + READY_REPORT_S
                _say("not ready yet: " + "; ".join(f"{n} ({why[n]})" for n in waiting))
            if waiting:
                await asyncio.sleep(READY_POLL_S)


async def _not_ready(session: aiohttp.ClientSession, url: str) -> str:
    """Empty when url answers 200, else why not, in a few words."""
    try:
        async with session.get(url) as response:
            if response.status == 200:
                return ""
            return f"{url} answers {response.status}: {(await response.text())[:80]}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return f"{url}: {type(exc).__name__}"


def _command(name: str, env: dict[str, str]) -> list[str]:
    if name == "fake-graph":
        return ["-m", "lull.cli", "fake-graph", "--port", env["LULL_FAKE_GRAPH_PORT"]]
    return ["-m", f"lull.{name}"]


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
    _say("in another terminal, simulate three users typing bursts (new users each run):")
    _say(f"  {_lull_command()} simulate --url http://127.0.0.1:{port}/webhook "
         f"--app-secret {secret} --users 3 --messages-per-user 3 --gap-ms 800")  # fmt: skip
    if env.get("LULL_ACCOUNTS") == str(DEV_ACCOUNTS):
        _say("two accounts (dev/accounts.toml): the Messenger page closes windows after 2 s and")
        _say("echoes at once; --platform whatsapp: 5 s, and the echo bot thinks a second first")
    _say(
        "the bot's replies appear below as [fake-graph] 'reply sent' lines, and at "
        f"http://127.0.0.1:{env['LULL_FAKE_GRAPH_PORT']}/_sent"
    )
    if env.get("LULL_MEDIA_SECRET") == DEV_MEDIA_SECRET:
        platforms = "--platform whatsapp" if "LULL_ACCOUNTS" in env else "any --platform"
        _say(f"add --media ({platforms}) for a picture and a voice note: the bot fetches the")
        _say("picture through its media link and answers the voice note from its transcript")


def _lull_command() -> str:
    """How to run `lull` from any terminal: the venv's script, even when the venv is not active."""
    script = Path(sys.executable).parent / "lull"
    return str(script) if script.exists() else f"{sys.executable} -m lull.cli"
