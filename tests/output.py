"""A child process whose merged output a test reads line by line as it comes (with the
moment each line arrived), to wait for a line with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from tests.poll import until


class Child:
    """python -m <module> with its stdout and stderr merged; lines kept as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[tuple[float, str]] = []
        assert proc.stdout is not None
        self._reader = asyncio.create_task(self._read(proc.stdout))

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> Child:
        """Start `python *args` in a session of its own (as a terminal's job is)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        return cls(proc)

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append((time.monotonic(), line.decode(errors="replace").rstrip("\n")))

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return "\n".join(text for _, text in self.lines)

    def first(self, *parts: str) -> tuple[float, str] | None:
        """The first line holding every part, with when it arrived."""
        return next(((at, text) for at, text in self.lines if all(p in text for p in parts)), None)

    async def line_with(self, *parts: str, timeout_s: float) -> str:
        """Wait for a line holding every part; fail (showing the output) if none comes."""

        def seen() -> bool:
            found = self.first(*parts) is not None
            # All output read and the line not in it: it never will be.
            assert found or not self._reader.done(), self.output
            return found

        await until(seen, f"a line with {parts}", timeout_s)
        found = self.first(*parts)
        assert found is not None
        return found[1]

    def interrupt(self) -> None:
        """Ctrl-C as a terminal sends it: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    async def finish(self, timeout_s: float) -> int:
        """Wait for the exit (and the last of the output); killed if it does not come."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
            raise AssertionError(f"no exit within {timeout_s} s:\n{self.output}") from None
        await asyncio.wait_for(self._reader, timeout_s)
        return code

    async def kill(self) -> None:
        """Whatever is left of the process group, gone (a test's cleanup)."""
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        self._reader.cancel()


def clean_environ(**variables: str) -> dict[str, str]:
    """This process's environment without its LULL_* variables, plus variables."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LULL_")}
    return {**env, "PYTHONUNBUFFERED": "1", **variables}
