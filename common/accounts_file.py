"""The accounts file (LULL_ACCOUNTS): one TOML table per account id, plus a "*" table of
defaults, read with the standard library (docs/accounts.md).

A key is the name of the environment variable it overrides, lowercased and without
`LULL_` (`window_ms` for LULL_WINDOW_MS), so that one table documents both: this module
turns each table into the variables it sets, and each service reads them with the same
validators it reads the environment with (common/accounts.py). Here: the file's own
mistakes (TOML, unknown keys, platforms, secrets written in the file), each with its
file:line, all at once.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lull.common.conversation import PLATFORMS
from lull.common.env import ConfigError, ConfigErrors
from lull.common.variables import PREFIX, SERVICE_VARIABLES

VARIABLE = "LULL_ACCOUNTS"
DEFAULTS = "*"
"""The table whose values every account starts from (the environment under it)."""

ACCOUNT_KEYS: dict[str, str] = {
    key: PREFIX + key.upper()
    for key in (
        # the processor: the window settings
        "window_mode",
        "window_ms",
        "max_wait_ms",
        "max_messages",
        "max_bytes",
        "flush_on",
        # the sender: the handler
        "handler",
        "handler_secret",
        "handler_timeout_ms",
        # the sender: the rate limits
        "rate_global",
        "rate_per_user",
        # the sender: presence (read receipts: arrival only where the environment's is, the
        # processor logs arrivals then)
        "read_receipts",
        "typing",
        "typing_refresh_ms",
        "presence_after_ms",
        "reply_delay_ms",
        "reply_delay_per_char_ms",
        # the sender: where its sends go
        "graph_api_base",
        "graph_api_base_messenger",
        "graph_api_base_instagram",
        "graph_api_base_whatsapp",
        "graph_api_version",
        "instagram_login",
        # human takeover: the pause times (the processor for a human's turns, the sender for
        # the bot's handoffs), the handoff's target and webhook (the sender)
        "human_pause_ms",
        "human_pause_max_ms",
        "handoff_target",
        "handoff_webhook",
        "handoff_webhook_timeout_ms",
        "handoff_webhook_attempts",
    )
}
"""The keys an account may set, each with the variable it overrides."""
TOKEN_KEY = "access_token"  # noqa: S105  (a key's name, not a secret)
"""The account's Graph access token (LULL_ACCESS_TOKENS holds the environment's)."""
OWN_KEYS = ("platform", "name", TOKEN_KEY)
SECRET_KEYS = frozenset({TOKEN_KEY, "handler_secret"})
REFERENCE_KEYS = frozenset({"handoff_webhook"})
"""Keys written as is, or as a secret's reference when they hold one (a webhook URL with a
token in its query): ${ENV_VAR} or file:/path is followed like a secret's."""
SECRET_FORMS = "${ENV_VAR} or file:/path (the file holds no secret)"  # noqa: S105
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER = re.compile(r"^\s*\[\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)\s*=")


@dataclass(frozen=True)
class Table:
    """One table of the file: the variables it sets, as text, and where it sets them."""

    id: str
    line: int
    variables: Mapping[str, str]
    """LULL_* name -> value as the environment would spell it (secrets resolved)."""
    lines: Mapping[str, int]
    """LULL_* name -> the line of the key that set it."""
    platform: str | None = None
    name: str = ""
    access_token: str | None = field(default=None, repr=False)
    names_token: bool = False
    """The table sets access_token (also when its reference was checked, not followed)."""


@dataclass(frozen=True)
class AccountsFile:
    """The file, checked: its "*" table (empty when absent) and one table per account id."""

    path: str
    defaults: Table
    accounts: Mapping[str, Table]

    def names_token(self, account_id: str) -> bool:
        """Whether the file gives account_id an access token (its own, or the "*" one)."""
        table = self.accounts.get(account_id)
        return self.defaults.names_token or (table is not None and table.names_token)


def read_accounts_file(path: str, environ: Mapping[str, str]) -> AccountsFile:
    """Read and check path; ConfigError (ConfigErrors for several), one line per problem,
    each starting with path:line. environ resolves the ${ENV_VAR} secrets."""
    accounts_file, problems = checked_accounts_file(path, environ, secrets=True)
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigErrors(problems)
    return accounts_file


def checked_accounts_file(
    path: str, environ: Mapping[str, str], *, secrets: bool
) -> tuple[AccountsFile, list[ConfigError]]:
    """The file with what could be read of it, and its problems (the file cannot be read,
    is not TOML: raised). secrets False: a secret's reference is checked, not followed, and
    the secret left out (a service that uses none need not be given them)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.about(VARIABLE, f"{VARIABLE}={path!r}: cannot read it: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)".
        line = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{line.group(1)}" if line else path
        raise ConfigError.about(VARIABLE, f"{where}: not TOML: {exc}") from None
    lines = _key_lines(text)
    problems: list[ConfigError] = []

    def problem(line: int, sentence: str) -> None:
        problems.append(ConfigError.about(VARIABLE, f"{path}:{line}: {sentence}"))

    tables: dict[str, Table] = {}
    for table_id, value in data.items():
        header = lines.get((table_id, None), 1)
        if not isinstance(value, dict):
            problem(header, f'{table_id} = ...: expected a table per account, ["<account id>"]')
            continue
        tables[table_id] = _table(table_id, value, lines, environ if secrets else None, problem)
    defaults = tables.pop(DEFAULTS, None) or Table(DEFAULTS, 0, {}, {})
    return AccountsFile(path, defaults, tables), problems


def _table(
    table_id: str,
    values: dict[str, object],
    lines: Mapping[tuple[str, str | None], int],
    environ: Mapping[str, str] | None,
    report: Callable[[int, str], None],
) -> Table:
    header = lines.get((table_id, None), 1)
    variables: dict[str, str] = {}
    where: dict[str, int] = {}
    own: dict[str, str] = {}
    for key, value in values.items():
        line = lines.get((table_id, key), header)
        label = f"[{_quoted(table_id)}] {key}"
        if key not in ACCOUNT_KEYS and key not in OWN_KEYS:
            report(line, f"{label}: {_unknown(key)}")
            continue
        text = _text(value)
        if text is None:
            report(line, f"{label}: a string, an integer, a boolean or a list of strings")
            continue
        if key in SECRET_KEYS or (key in REFERENCE_KEYS and _is_reference(text)):
            secret, why = _secret(text, environ)
            if secret is None:
                report(line, f"{label}={_masked_reference(text)}: {why}")
                continue
            if environ is None:
                continue  # not followed: left out
            text = secret
        if key in OWN_KEYS:
            own[key] = text
            continue
        variables[ACCOUNT_KEYS[key]] = text
        where[ACCOUNT_KEYS[key]] = line
    platform = own.get("platform")
    if platform is not None and platform not in PLATFORMS:
        line = lines.get((table_id, "platform"), header)
        report(line, f"[{_quoted(table_id)}] platform={platform!r}: one of {', '.join(PLATFORMS)}")
        platform = None
    return Table(
        table_id,
        header,
        variables,
        where,
        platform=platform,
        name=own.get("name", ""),
        access_token=own.get(TOKEN_KEY),
        names_token=TOKEN_KEY in values,
    )


def _text(value: object) -> str | None:
    """A TOML value as the environment variable it stands for would spell it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value) if value else "none"
    return None


def _secret(text: str, environ: Mapping[str, str] | None) -> tuple[str | None, str]:
    """(the secret, "") from a reference; (None, why) otherwise. environ None: only the
    reference's form is checked ("" for a good one)."""
    reference = _REFERENCE.fullmatch(text)
    if environ is None and (reference is not None or text.startswith("file:")):
        return "", ""
    if reference is not None and environ is not None:
        value = environ.get(reference.group(1), "").strip()
        return (value, "") if value else (None, f"{reference.group(1)} is unset or empty")
    if text.startswith("file:"):
        try:
            value = Path(text.removeprefix("file:")).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            return None, f"cannot read it: {exc.__class__.__name__}"
        return (value, "") if value else (None, "the file is empty")
    return None, f"a secret written in the file; write {SECRET_FORMS}"


def _is_reference(text: str) -> bool:
    """Whether text is written as a secret's reference (${ENV_VAR} or file:/path)."""
    return _REFERENCE.fullmatch(text) is not None or text.startswith("file:")


def _masked_reference(text: str) -> str:
    """A reference shown as written; anything else (a secret typed in) masked."""
    if _REFERENCE.fullmatch(text) or text.startswith("file:"):
        return repr(text)
    return f"<{len(text)} characters, masked>"


def _unknown(key: str) -> str:
    """Why key is refused, with the closest known key."""
    name = PREFIX + key.upper()
    if name in SERVICE_VARIABLES:
        return f"not a per-account setting: set {name} in the environment"
    known = [*ACCOUNT_KEYS, *OWN_KEYS]
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    return f"unknown key; did you mean {close[0]}?" if close else "unknown key"


def _quoted(table_id: str) -> str:
    return f'"{table_id}"'


def _key_lines(text: str) -> dict[tuple[str, str | None], int]:
    """(table, key) -> line, and (table, None) -> the table's header line. tomllib keeps no
    positions; the file's shape is flat (a header, then key = value lines)."""
    found: dict[tuple[str, str | None], int] = {}
    table: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header is not None:
            table = _unquote(header.group(1))
            found.setdefault((table, None), number)
            continue
        key = _KEY.match(line)
        if key is not None and table is not None:
            found.setdefault((table, _unquote(key.group(1))), number)
    return found


def _unquote(word: str) -> str:
    return word[1:-1] if word[:1] in "\"'" and word[-1:] == word[:1] else word


def accounts_path(environ: Mapping[str, str]) -> str | None:
    """LULL_ACCOUNTS, None when unset or blank."""
    value = environ.get(VARIABLE, "").strip()
    return value or None


def modified_ns(path: str) -> int | None:
    """The file's mtime (ns), None when it cannot be read: what the watch compares."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None
