"""Lua scripts: the .lua files in common/store/lua/, called by SHA.

Every atomic transition is one script. A LuaScript is read once at start; callers SCRIPT
LOAD it before their first call and call it by EVALSHA. After a Redis restart the server
has forgotten it and answers NOSCRIPT, which ran nothing: the script is loaded again and
the call repeated. Calls go through `execute_command`, which a cluster client routes by
the first key (every script's keys share one hash tag) and a cluster pipeline accepts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError
from redis.typing import EncodableT

from lull.common.redis_conn import RedisClient

CLOCK_PRELUDE = ("clock",)
"""clock_ms, the Redis clock in ms (lua/clock.lua)."""
LEGACY_PRELUDE = ("legacy",)
"""What reads or moves 0.1's state (lua/legacy.lua; the upgrade, with legacy.py)."""
LIFE_PRELUDES = ("clock", "legacy", "conversation_life")
"""What the scripts that write a conversation's state need (lua/conversation_life.lua)."""
STORE = "common/store"
"""The folder (under lull's root) whose lua/ holds the scripts."""

Command = tuple[EncodableT, ...]
"""One Redis command as its words: ("EVALSHA", sha, numkeys, *keys, *args)."""


def read_lua(name: str, folder: str = STORE) -> str:
    """The text of `<folder>/lua/<name>.lua`."""
    # From lull's root, not by importing a package of the folder's: the store imports none.
    path = resources.files("lull").joinpath(*folder.split("/"), "lua", f"{name}.lua")
    return path.read_text(encoding="utf-8")


def is_noscript(result: object) -> bool:
    """Whether a pipelined result is Redis's NOSCRIPT (the script was forgotten)."""
    return isinstance(result, NoScriptError) or (
        isinstance(result, Exception) and str(result).startswith("NOSCRIPT")
    )


@dataclass(frozen=True)
class LuaScript:
    """One script file and the SHA1 that EVALSHA names it by."""

    name: str
    source: str
    sha: str

    @classmethod
    def read(cls, name: str, *, preludes: Sequence[str] = (), folder: str = STORE) -> LuaScript:
        """`<folder>/lua/<name>.lua`, read now; preludes name files of the store's lua/ with
        functions that several scripts share, put before the script's own text, in order."""
        source = "\n".join([*(read_lua(prelude) for prelude in preludes), read_lua(name, folder)])
        sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324  (Redis's id, not security)
        return cls(name, source, sha)

    async def load(self, client: RedisClient) -> None:
        """SCRIPT LOAD it (idempotent; a cluster client loads it on every primary)."""
        await client.script_load(self.source)

    def command(self, keys: Sequence[EncodableT], args: Sequence[EncodableT]) -> Command:
        """The EVALSHA words, for a pipeline."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def call(
        self, client: RedisClient, keys: Sequence[EncodableT], args: Sequence[EncodableT]
    ) -> Any:
        """EVALSHA it; on NOSCRIPT load it and call once more."""
        command = self.command(keys, args)
        try:
            return await client.execute_command(*command)
        except NoScriptError:
            await self.load(client)
            return await client.execute_command(*command)
