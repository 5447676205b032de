"""`lull accounts`: the settings each account gets, from the accounts file (LULL_ACCOUNTS)
over the environment, as the processor and the sender read them; secrets masked.

`--json` prints one JSON object: `file` (the path, null without one), `strict`, and
`accounts[]`, the defaults ("*": what an account the file does not name gets) first, each
with `account`, `platform`, `name`, `window_mode`, `window_ms`, `max_wait_ms`,
`max_messages`, `max_bytes`, `flush_on[]`, `handler` (an URL without its query or user
info), `handler_secret` and `access_token` (masked, "" when unset), `access_token_from`
(`file`, `LULL_ACCESS_TOKENS` or null), `handler_timeout_ms`, `rate_global` and
`rate_per_user` (`count/<period>ms:burst`, null: no limit), `typing`,
`typing_refresh_ms` (null: per platform), `presence_after_ms`, `reply_delay_ms`,
`reply_delay_per_char_ms`, `human_pause_ms`, `human_pause_max_ms`, `handoff_target`,
`handoff_webhook` (an URL with its user info, query and fragment masked; null when unset),
`handoff_webhook_timeout_ms`, `handoff_webhook_attempts`.

`--check FILE` reads FILE as both services would, without running anything: exit 0, or 2
with one line per problem (file:line). The ${ENV_VAR} secrets are looked up in this
environment, so run it where the services' secrets are.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

import orjson

from lull.common.access_tokens import DEFAULT_ACCOUNT, load_tokens
from lull.common.accounts import STRICT, Accounts, load_accounts, raise_problems
from lull.common.accounts_file import DEFAULTS, VARIABLE
from lull.common.env import ConfigError, mask, problems_of
from lull.processor.settings import ProcessorAccount, processor_account
from lull.sender.accounts.settings import AccountSend, account_sends_of
from lull.sender.bot import handler_target
from lull.sender.handoff import webhook_shown
from lull.sender.rates.rate import Rate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull accounts` options."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--check", metavar="FILE", help="validate an accounts file without running (exit 0 or 2)"
    )


def run(args: argparse.Namespace) -> int:
    """Print each account's effective settings, or check a file."""
    environ = dict(os.environ)
    if args.check:
        environ[VARIABLE] = args.check
    try:
        rows = effective(environ)
    except ConfigError as exc:
        for problem in problems_of(exc):
            print(f"lull accounts: bad configuration: {problem}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.check}: {len(rows) - 1} accounts, no problem found")
        return 0
    path = environ.get(VARIABLE, "").strip() or None
    if args.json:
        document = {"file": path, "strict": _strict(environ), "accounts": rows}
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if path is None:
        print(f"{VARIABLE} is unset: every account gets the environment's settings")
    for row in rows:
        print(_text(row))
    return 0


def effective(environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per account, the defaults first; ConfigError lists every problem of the
    file (the processor's and the sender's readings of it), each once."""
    problems: list[ConfigError] = []
    windows = sends = None
    try:
        windows = load_accounts(environ, processor_account)
    except ConfigError as exc:
        problems += problems_of(exc)
    try:
        sends = load_accounts(environ, account_sends_of(environ))
    except ConfigError as exc:
        seen = {str(p) for p in problems}
        problems += [p for p in problems_of(exc) if str(p) not in seen]
    raise_problems(problems)
    assert windows is not None and sends is not None  # else a problem was raised
    tokens = _environment_tokens(environ)
    return [_row(account_id, windows, sends, tokens) for account_id in [DEFAULTS, *windows.by_id]]


def _row(
    account_id: str,
    windows: Accounts[ProcessorAccount],
    sends: Accounts[AccountSend],
    environment_tokens: Mapping[str, str],
) -> dict[str, Any]:
    table = None
    if windows.file is not None:
        file = windows.file
        table = file.defaults if account_id == DEFAULTS else file.accounts.get(account_id)
    processor = windows.default if account_id == DEFAULTS else windows.of(account_id)
    window = processor.window
    send = sends.default if account_id == DEFAULTS else sends.of(account_id)
    bot, handoff = send.bot, send.handoff
    token_id = DEFAULT_ACCOUNT if account_id == DEFAULTS else account_id
    token, source = None, None
    if table is not None and table.access_token is not None:
        token, source = table.access_token, "file"
    elif token_id in environment_tokens:
        token, source = environment_tokens[token_id], "LULL_ACCESS_TOKENS"
    return {
        "account": account_id,
        "platform": None if table is None else table.platform,
        "name": "" if table is None else table.name,
        "window_mode": window.mode,
        "window_ms": window.window_ms,
        "max_wait_ms": window.max_wait_ms,
        "max_messages": window.max_messages,
        "max_bytes": window.max_bytes,
        "flush_on": sorted(window.flush_on),
        "handler": handler_target(bot.handler),
        "handler_secret": mask(bot.handler_secret) if bot.handler_secret else "",
        "handler_timeout_ms": bot.handler_timeout_ms,
        "typing": send.presence.typing,
        "typing_refresh_ms": send.presence.typing_refresh_ms,
        "presence_after_ms": send.presence.after_ms,
        "reply_delay_ms": send.presence.reply_delay_ms,
        "reply_delay_per_char_ms": send.presence.reply_delay_per_char_ms,
        "rate_global": _rate(send.rates.rate_global),
        "rate_per_user": _rate(send.rates.rate_per_user),
        "access_token": mask(token) if token else "",
        "access_token_from": source,
        # The processor's (a human's turns) and the sender's (handoffs) are the same keys.
        "human_pause_ms": processor.pause.quiet_ms,
        "human_pause_max_ms": processor.pause.cap_ms,
        "handoff_target": handoff.target,
        "handoff_webhook": None
        if handoff.webhook_url is None
        else webhook_shown(handoff.webhook_url),
        "handoff_webhook_timeout_ms": handoff.webhook_timeout_ms,
        "handoff_webhook_attempts": handoff.webhook_attempts,
    }


def _text(row: dict[str, Any]) -> str:
    """One account, as a few lines."""
    title = (
        "* (defaults: an account the file does not name)"
        if row["account"] == DEFAULTS
        else (
            " ".join(
                str(part) for part in (row["account"], row["platform"] or "", row["name"]) if part
            )
        )
    )
    flush = ",".join(row["flush_on"]) or "none"
    secret = row["handler_secret"] or "no secret"
    token = f"{row['access_token']} ({row['access_token_from']})" if row["access_token"] else "none"
    handler = row["handler"] or "(unset)"
    webhook = (
        f"webhook {row['handoff_webhook']} (timeout {row['handoff_webhook_timeout_ms']} ms, "
        f"{row['handoff_webhook_attempts']} attempts)"
        if row["handoff_webhook"]
        else "no webhook"
    )
    return (
        f"{title}\n"
        f"  window: {row['window_mode']} {row['window_ms']} ms, max wait {row['max_wait_ms']} ms, "
        f"{row['max_messages']} messages, {row['max_bytes']} bytes, flush on {flush}\n"
        f"  handler: {handler}, {secret}, timeout {row['handler_timeout_ms']} ms\n"
        f"  limits: {row['rate_global'] or 'none'} sends, "
        f"{row['rate_per_user'] or 'none'} batches per user\n"
        f"  presence: typing {'on' if row['typing'] else 'off'}, after "
        f"{row['presence_after_ms']} ms, reply delay {row['reply_delay_ms']} ms "
        f"+ {row['reply_delay_per_char_ms']} ms a character\n"
        f"  takeover: pause {row['human_pause_ms']} ms after a human's message, at most "
        f"{row['human_pause_max_ms']} ms; handoff target {row['handoff_target']}, {webhook}\n"
        f"  access token: {token}"
    )


def _rate(rate: Rate | None) -> str | None:
    """A limit as LULL_RATE_* spells it (count/period_ms:burst); None: no limit."""
    return None if rate is None else f"{rate.count}/{rate.period_ms}ms:{rate.burst}"


def _environment_tokens(environ: Mapping[str, str]) -> Mapping[str, str]:
    """LULL_ACCESS_TOKENS' tokens; none when it does not read (the sender says why)."""
    text = environ.get("LULL_ACCESS_TOKENS", "").strip()
    try:
        return load_tokens(text) if text else {}
    except ValueError:
        return {}


def _strict(environ: Mapping[str, str]) -> bool:
    return environ.get(STRICT, "").strip().lower() in ("1", "true", "yes", "on")
