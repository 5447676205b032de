"""Lua scripts live as .lua files beside the package that runs them, loaded once at start."""

from __future__ import annotations

from importlib import resources

from redis.commands.core import AsyncScript

from common.redis_conn import RedisClient


def read_lua(package: str, name: str) -> str:
    """The text of `<package>/lua/<name>.lua`."""
    return resources.files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def register(client: RedisClient, package: str, name: str) -> AsyncScript:
    """A script object that calls EVALSHA and loads the script again after a Redis restart."""
    return client.register_script(read_lua(package, name))
