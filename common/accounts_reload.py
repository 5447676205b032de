"""The accounts in use, replaced whole when the file is read again: on SIGHUP, or when its
mtime changes (checked every WATCH_INTERVAL_S). A file that does not read keeps the
settings in use and says why in one log line; an account's new settings apply to what
starts after the reload (a window opened, a batch delivered), never to one under way."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Generic, TypeVar

import structlog

from lull.common.accounts import Accounts
from lull.common.accounts_file import modified_ns
from lull.common.env import ConfigError, problems_of

T = TypeVar("T")
WATCH_INTERVAL_S = 5.0

log = structlog.get_logger("lull.accounts")


class LiveAccounts(Generic[T]):
    """One service's accounts; `current` is the settings in use (read it per event)."""

    def __init__(self, accounts: Accounts[T]) -> None:
        self.current = accounts
        self._path = accounts.file.path if accounts.file is not None else None
        self._seen_ns = modified_ns(self._path) if self._path is not None else None

    def reload(self, why: str = "requested") -> bool:
        """Read the file again; False (and one error line) when it does not read: the
        settings in use stay."""
        load = self.current.load
        if load is None:
            return False
        if self._path is not None:
            self._seen_ns = modified_ns(self._path)
        try:
            accounts = load()
        except ConfigError as exc:
            reasons = "; ".join(str(problem) for problem in problems_of(exc))
            log.error("accounts file not reloaded: the settings in use stay", why=why,
                      path=self._path, reason=reasons)  # fmt: skip
            return False
        self.current = accounts
        log.info("accounts file reloaded", why=why, path=self._path, accounts=len(accounts.by_id))
        return True

    def changed(self) -> bool:
        """The file's mtime differs from the one last read."""
        return self._path is not None and modified_ns(self._path) != self._seen_ns

    async def watch(self, stop: asyncio.Event, interval_s: float = WATCH_INTERVAL_S) -> None:
        """Reload on SIGHUP and when the file changes, until stop is set."""
        hup = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Signals reach the main thread only (a test may run a service in a thread).
        signals = threading.current_thread() is threading.main_thread()
        if signals:
            loop.add_signal_handler(signal.SIGHUP, hup.set)
        try:
            while not stop.is_set():
                waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(hup.wait())}
                await asyncio.wait(waits, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED)
                for task in waits:
                    task.cancel()
                if stop.is_set():
                    return
                if hup.is_set():
                    hup.clear()
                    self.reload("SIGHUP")
                elif self.changed():
                    self.reload("the file changed")
        finally:
            if signals:
                loop.remove_signal_handler(signal.SIGHUP)
