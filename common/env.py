"""Typed reading of LULL_* environment variables, with errors that name the variable.

A service reads its settings with Env(source, collect=True): a bad value is recorded and
reading goes on with the default, and check() raises every problem at once (an operator
fixes their env file in one round, not one start per mistake), unknown LULL_* names
included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from lull.common.variables import unknown_variable_problems

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """A LULL_* variable holds a value the service cannot run with."""

    def __init__(self, name: str, value: str | None, allowed: str, *, secret: bool = False) -> None:
        shown = "<unset>" if value is None else (mask(value) if secret else repr(value))
        super().__init__(f"{name}={shown}: {allowed}")
        self.name = name

    @classmethod
    def about(cls, name: str, sentence: str) -> ConfigError:
        """An error whose whole text is sentence (which names the variable)."""
        error = cls.__new__(cls)
        ValueError.__init__(error, sentence)
        error.name = name
        return error


class ConfigErrors(ConfigError):
    """Several problems at once; str() has one line per problem."""

    def __init__(self, problems: list[ConfigError]) -> None:
        ValueError.__init__(self, "\n".join(str(p) for p in problems))
        self.name = problems[0].name
        self.problems = problems


def problems_of(error: ConfigError) -> list[ConfigError]:
    """The single problems error stands for."""
    return error.problems if isinstance(error, ConfigErrors) else [error]


def mask(value: str) -> str:
    """Show that a secret is set without showing it."""
    return f"<{len(value)} characters, masked>" if value else "''"


class Env:
    """Reads variables from one mapping (os.environ in services, a dict in tests)."""

    def __init__(self, source: Mapping[str, str], *, collect: bool = False) -> None:
        self._source = source
        self._collect = collect
        self._errors: list[ConfigError] = []

    def report(self, error: ConfigError) -> None:
        """A problem found while reading: raised at once, or kept for check() (collect)."""
        if not self._collect:
            raise error
        self._errors.append(error)

    def ok(self, *names: str) -> bool:
        """No problem was reported about any of names (cross-field checks skip otherwise,
        so a bad value is not reported twice, once against a default)."""
        return not any(error.name in names for error in self._errors)

    def problems(self) -> list[ConfigError]:
        """The problems reported so far (collect), unknown names left out."""
        return list(self._errors)

    def check(self) -> None:
        """Raise every problem so far, unknown LULL_* names first (a misspelt name often
        explains the rest): one ConfigError, or ConfigErrors for several."""
        unknown = [
            ConfigError.about(name, problem)
            for name, problem in unknown_variable_problems(self._source)
        ]
        problems = unknown + self._errors
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise ConfigErrors(problems)

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
            self.report(ConfigError(name, None, f"required: {allowed}", secret=secret))
            return ""
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
            number = None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            self.report(ConfigError(name, value, bounds))
            return default
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
        self.report(ConfigError(name, value, "one of 1, true, yes, on, 0, false, no, off"))
        return default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        """One of a fixed set of words, case-insensitive."""
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in allowed:
            self.report(ConfigError(name, value, "one of " + ", ".join(allowed)))
            return default
        return value.lower()

    def parsed(self, name: str, default: T, parse: Callable[[str], T], allowed: str) -> T:
        """A value turned into T by parse, which raises ValueError on bad input."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            pass  # reported outside the handler: the parse error is no part of the message
        self.report(ConfigError(name, value, allowed))
        return default
