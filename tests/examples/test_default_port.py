"""The README's "now your own bot" command reaches every HTTP example bot as it starts by
default: one port for all of them (a newcomer who ran the Node bot met a refused port)."""

from __future__ import annotations

import re
from pathlib import Path

from examples.python_bot.bot import Config
from tests.examples.conftest import EXAMPLES

ROOT = EXAMPLES.parent
COMMAND = re.compile(r"LULL_HANDLER=http://127\.0\.0\.1:(\d+)/lull\b")


def _commands(path: Path) -> set[int]:
    return {int(port) for port in COMMAND.findall(path.read_text())}


def test_every_command_and_every_example_bot_use_one_port() -> None:
    python_port = Config.from_env({"LULL_HANDLER_SECRET": "s"}).port
    node = (EXAMPLES / "node_bot" / "bot.mjs").read_text()
    [node_port] = re.findall(r'process\.env\.BOT_PORT \?\? "(\d+)"', node)
    assert int(node_port) == python_port
    documents = [ROOT / "README.md", *EXAMPLES.glob("*/README.md"), EXAMPLES / "README.md"]
    documents += [EXAMPLES / "node_bot" / "bot.mjs", EXAMPLES / "python_bot" / "bot.py"]
    found = {str(path.relative_to(ROOT)): _commands(path) for path in documents}
    assert found[str(Path("README.md"))] == {python_port}
    assert {port for ports in found.values() for port in ports} == {python_port}, found
