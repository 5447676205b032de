"""Per-account settings: each service's part of the accounts file (LULL_ACCOUNTS), built once
per account into a small frozen object, so that an event's settings are a dict lookup.

An account's settings are what the service would read from an environment made of the
process environment, then the file's "*" table, then the account's own table: the same
validators, so a value means in the file what it means in the environment. A problem is
reported with the file:line of the key that caused it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from lull.common.accounts_file import (
    DEFAULTS,
    VARIABLE,
    AccountsFile,
    Table,
    accounts_path,
    checked_accounts_file,
)
from lull.common.env import ConfigError, ConfigErrors, Env, problems_of
from lull.common.variables import PREFIX

T = TypeVar("T")
STRICT = "LULL_ACCOUNTS_STRICT"


@dataclass(frozen=True)
class Accounts(Generic[T]):
    """One service's settings per account id; `default` for an account the file does not name."""

    default: T
    by_id: Mapping[str, T]
    file: AccountsFile | None = None
    strict: bool = False
    """LULL_ACCOUNTS_STRICT=1: an event for an account the file does not name is refused."""
    load: Callable[[], Accounts[T]] | None = field(default=None, compare=False, repr=False)
    """Reads the file again (a reload); None without a file."""

    def of(self, account_id: str) -> T:
        """The settings of account_id."""
        return self.by_id.get(account_id, self.default)

    def refusal(self, account_id: str) -> str | None:
        """Why an event for account_id is refused (strict, not in the file); None: it is not."""
        if not self.strict or account_id in self.by_id:
            return None
        path = self.file.path if self.file is not None else "the accounts file"
        return f"account {account_id} is not in {path} ({STRICT}=1)"


def load_accounts(
    environ: Mapping[str, str], build: Callable[[Env], T], *, secrets: bool = True
) -> Accounts[T]:
    """The accounts of environ's LULL_ACCOUNTS, each built by build (a service's own reader
    of its part of the settings); without a file, build of the environment for everyone.
    ConfigError names every problem, each with its file:line. secrets False: the secrets'
    references are checked, not followed (a service that uses no secret)."""
    strict_env = Env(environ, collect=True)
    strict = strict_env.flag(STRICT, False)
    path = accounts_path(environ)
    problems = strict_env.problems()
    if path is None:
        if strict and not problems:
            problems.append(
                ConfigError(STRICT, "1", f"needs {VARIABLE} (a file to be strict about)")
            )
        raise_problems(problems)
        return Accounts(build(Env(environ, collect=True)), {})
    raise_problems(problems)
    # The file's own mistakes and its values' at once: the values of a key refused are
    # left out, the rest is read.
    accounts_file, problems = checked_accounts_file(path, environ, secrets=secrets)
    base = Env(environ, collect=True)
    build(base)
    # The environment's own problems are the service's to report (once), not the file's.
    known = {str(problem) for problem in base.problems()}
    default = _build(
        accounts_file, (accounts_file.defaults,), environ, build, known=known, problems=problems
    )
    by_id = {
        account_id: _build(
            accounts_file,
            (accounts_file.defaults, table),
            environ,
            build,
            known=known,
            problems=problems,
        )
        for account_id, table in accounts_file.accounts.items()
    }
    raise_problems(problems)
    return Accounts(
        default,
        by_id,
        accounts_file,
        strict,
        load=lambda: load_accounts(environ, build, secrets=secrets),
    )


def accounts_in(
    env: Env, environ: Mapping[str, str], build: Callable[[Env], T], *, secrets: bool = True
) -> Accounts[T] | None:
    """A service's part of the accounts file, as load_accounts reads it, for a service's
    settings reader: None without a file (the environment's for all) or when it has
    problems, which go to env (reported with the environment's, at once)."""
    try:
        accounts = load_accounts(environ, build, secrets=secrets)
    except ConfigError as exc:
        for problem in problems_of(exc):
            env.report(problem)
        return None
    return accounts if accounts.file is not None else None


def _build(
    accounts_file: AccountsFile,
    tables: tuple[Table, ...],
    environ: Mapping[str, str],
    build: Callable[[Env], T],
    *,
    known: set[str],
    problems: list[ConfigError],
) -> T:
    """build over environ with tables laid on it; its new problems placed in the file."""
    layered = dict(environ)
    for table in tables:
        layered.update(table.variables)
    env = Env(layered, collect=True)
    value = build(env)
    for problem in env.problems():
        text = str(problem)
        if text in known:
            continue
        known.add(text)  # the "*" table's problem is reported once, not once per account
        problems.append(_placed(accounts_file.path, tables, problem.name, text))
    return value


def _placed(path: str, tables: tuple[Table, ...], name: str, text: str) -> ConfigError:
    """text said of the key that set name (the innermost table that did), else of the
    innermost table (a value from the environment that does not fit this account's)."""
    key = name.removeprefix(PREFIX).lower()
    for table in reversed(tables):
        if name in table.lines:
            line = table.lines[name]
            break
    else:
        table = tables[-1]
        line = table.line
    if text.startswith(name + "="):
        text = key + text.removeprefix(name)
    label = DEFAULTS if table.id == DEFAULTS else table.id
    return ConfigError.about(VARIABLE, f'{path}:{line}: ["{label}"] {text}')


def raise_problems(problems: list[ConfigError]) -> None:
    """Raise problems, if any, in the file's order (ConfigErrors for several)."""
    problems.sort(key=_line)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors([p for problem in problems for p in problems_of(problem)])


def _line(problem: ConfigError) -> int:
    """A file problem's line (path:line: ...), for the order of the report; 0 otherwise."""
    _, _, rest = str(problem).partition(":")
    line, _, _ = rest.partition(":")
    return int(line) if line.isdigit() else 0
