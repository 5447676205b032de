"""examples/python_handler through the local stack, imported as the README says: its
folder on PYTHONPATH, LULL_HANDLER=python:example_handler:reply."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.examples.conftest import EXAMPLES, Stack
from tests.poll import until

HANDLER = "python:example_handler:reply"
MENU = [
    {"content_type": "text", "title": "Opening hours", "payload": "HOURS"},
    {"content_type": "text", "title": "Talk to a person", "payload": "HUMAN"},
]


async def test_the_handler_greets_then_answers(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES / "python_handler"))
    await stack.turn(HANDLER, "u1", ["hi", "I need help"])
    await stack.turn(HANDLER, "u1", ["with my order"])
    assert stack.replies_to("u1") == [
        {"text": "Hello! You said: hi\nI need help", "quick_replies": MENU},
        {"text": "You said: with my order"},
    ]
    assert await stack.dead_reasons() == []


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_lull_sender_imports_it_from_pythonpath(stack: Stack) -> None:
    await stack.user_types("u2", ["hello"])
    assert await stack.close_windows() == 1
    env = {
        **os.environ,
        **stack.sender_env(HANDLER),
        "PYTHONPATH": str(EXAMPLES / "python_handler"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "lull.sender"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def answered() -> bool:
            assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
            return len(stack.replies_to("u2")) == 1

        await until(answered, "the sender answered with the example handler", 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, output.decode()[-2000:]
    assert stack.replies_to("u2") == [{"text": "Hello! You said: hello", "quick_replies": MENU}]
