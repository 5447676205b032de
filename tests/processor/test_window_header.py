"""The window header layout is written in three places; they must agree.

window_emit.lua (the prelude of window_apply.lua and window_close.lua) packs and unpacks it
(struct HDR, HDR_LEN), `lull stats` reads it from Python (ops.stats.HEADER) to age open
windows, and `lull conversation` (common.conversation_state.WINDOW_HEADER) to show one.
"""

from __future__ import annotations

import re
import struct

from lull.common.store.conversations import WINDOW_HEADER
from lull.common.store.scripts import read_lua
from lull.ops.stats import HEADER


def _lua_header(name: str) -> tuple[str, int]:
    source = read_lua(name)
    layout = re.search(r"^local HDR = '([^']+)'$", source, re.MULTILINE)
    length = re.search(r"^local HDR_LEN = ([0-9 *+]+)$", source, re.MULTILINE)
    assert layout is not None and length is not None, f"{name}.lua has no HDR / HDR_LEN"
    return layout.group(1), eval(length.group(1))  # noqa: S307  (digits, * and + only)


def test_the_three_window_header_layouts_agree() -> None:
    layout, length = _lua_header("window_emit")
    for name in ("window_apply", "window_close"):
        assert "local HDR =" not in read_lua(name), f"{name}.lua: one layout only"
    # Lua's struct spells a 4-byte unsigned I4; Python's, with "<", plain I.
    assert HEADER.format == WINDOW_HEADER.format == layout.replace("I4", "I")
    assert HEADER.size == struct.calcsize(HEADER.format) == length
