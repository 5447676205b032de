"""The window header layout is written in two places, once in Lua and once in Python; they
must agree.

window_layout.lua (the prelude of every window script) packs and unpacks it (struct HDR,
HDR_LEN); common/store/window_reads.py (WINDOW_HEADER) reads it for `lull stats` and
`lull conversation`.
"""

from __future__ import annotations

import re
import struct

from lull.common.store.scripts import read_lua
from lull.common.store.window_reads import WINDOW_HEADER


def _lua_header(name: str) -> tuple[str, int]:
    source = read_lua(name)
    layout = re.search(r"^local HDR = '([^']+)'$", source, re.MULTILINE)
    length = re.search(r"^local HDR_LEN = ([0-9 *+]+)$", source, re.MULTILINE)
    assert layout is not None and length is not None, f"{name}.lua has no HDR / HDR_LEN"
    return layout.group(1), eval(length.group(1))  # noqa: S307  (digits, * and + only)


def test_the_window_header_layouts_agree() -> None:
    layout, length = _lua_header("window_layout")
    for name in ("window_apply", "window_close", "window_emit", "window_flush"):
        assert "local HDR =" not in read_lua(name), f"{name}.lua: one layout only"
    # Lua's struct spells a 4-byte unsigned I4; Python's, with "<", plain I.
    assert WINDOW_HEADER.format == layout.replace("I4", "I")
    assert WINDOW_HEADER.size == struct.calcsize(WINDOW_HEADER.format) == length
