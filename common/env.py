"""Typed reading of LULL_* environment variables, with errors that name the variable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """A LULL_* variable holds a value the service cannot run with."""

    def __init__(self, name: str, value: str | None, allowed: str, *, secret: bool = False) -> None:
        shown = "<unset>" if value is None else (mask(value) if secret else repr(value))
        super().__init__(f"{name}={shown}: {allowed}")
        self.name = name


def mask(value: str) -> str:
    """Show that a secret is set without showing it."""
    return f"<{len(value)} characters, masked>" if value else "''"


class Env:
    """Reads variables from one mapping (os.environ in services, a dict in tests)."""

    def __init__(self, source: Mapping[str, str]) -> None:
        self._source = source

    def raw(self, name: str) -> str | None:
        """The variable's text, None when unset or blank."""
        value = self._source.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def string(self, name: str, default: str) -> str:
        """A plain string."""
        value = self.raw(name)
        return default if value is None else value

    def required(self, name: str, allowed: str, *, secret: bool = False) -> str:
        """A string that must be set."""
        value = self.raw(name)
        if value is None:
            raise ConfigError(name, None, f"required: {allowed}", secret=secret)
        return value

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        """An integer in [minimum, maximum]."""
        value = self.raw(name)
        if value is None:
            return default
        bounds = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
        try:
            number = int(value.replace("_", ""))
        except ValueError:
            raise ConfigError(name, value, bounds) from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ConfigError(name, value, bounds)
        return number

    def flag(self, name: str, default: bool) -> bool:
        """A boolean: 1/true/yes/on or 0/false/no/off."""
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, value, "one of 1, true, yes, on, 0, false, no, off")

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        """One of a fixed set of words, case-insensitive."""
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in allowed:
            raise ConfigError(name, value, "one of " + ", ".join(allowed))
        return value.lower()

    def parsed(self, name: str, default: T, parse: Callable[[str], T], allowed: str) -> T:
        """A value turned into T by parse, which raises ValueError on bad input."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            raise ConfigError(name, value, allowed) from None
