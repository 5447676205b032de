"""The accounts file as operators change it: real processor and sender processes, SIGHUP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lull.dev.embedded_redis import free_port

WAIT_S = 20


class Output:
    """A child's output lines, read on a thread (a full pipe would block the child)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()
        self._proc = proc

    def _read(self, stream: object) -> None:
        for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
            self.lines.append(line.decode(errors="replace"))

    def join(self) -> None:
        """Wait for the end of the output, and close the pipe."""
        self._thread.join(WAIT_S)
        assert self._proc.stdout is not None
        self._proc.stdout.close()

    def wait_for(self, text: str, count: int = 1) -> None:
        """Until text is in count lines; the child still running."""
        deadline = time.monotonic() + WAIT_S
        while sum(text in line for line in self.lines) < count:
            assert self._proc.poll() is None, "".join(self.lines)[-2000:]
            assert time.monotonic() < deadline, f"no {text!r}: " + "".join(self.lines)[-2000:]
            time.sleep(0.05)  # a child's log line, bounded above


@pytest.mark.parametrize("module", ["processor", "sender"])
def test_sighup_reloads_and_a_bad_file_keeps_the_settings(
    module: str, base_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('["p1"]\nwindow_ms = 900\n', encoding="utf-8")
    port = free_port()
    env = {
        **os.environ, **base_env, "LULL_HANDLER": "echo", "LULL_ACCOUNTS": str(path),
        "LULL_PROCESSOR_METRICS_PORT": str(port), "LULL_SENDER_METRICS_PORT": str(port),
        "LULL_LOG_LEVEL": "info",
    }  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", f"lull.{module}"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output = Output(proc)
    try:
        output.wait_for("consumer starting")
        path.write_text('["p1"]\nwindow_sm = 700\n', encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        output.wait_for("accounts file not reloaded")
        path.write_text('["p1"]\nwindow_ms = 700\n', encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        output.wait_for("accounts file reloaded")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output.join()
    text = "".join(output.lines)
    [bad] = [line for line in output.lines if "accounts file not reloaded" in line]
    assert "window_sm: unknown key; did you mean window_ms?" in bad
    assert "SIGHUP" in bad
    assert "Traceback" not in text
