"""The `lull` command: one subcommand per service or operator task.

Above every package (lull.cli, not lull.common): it dispatches to each of them by name, so
none of them depends on the others through it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple


class _Command(NamedTuple):
    help: str
    # "package.module": the module has `run(args) -> int` and may have
    # `add_arguments(parser)`; each command imports only its own code, when used.
    module: str


_COMMANDS: dict[str, _Command] = {
    "ingest": _Command("run the webhook ingest service", "lull.ingest.service"),
    "processor": _Command("run one processor replica (windows, batches)", "lull.processor.service"),
    "sender": _Command("run one sender replica (handler, Graph Send API)", "lull.sender.service"),
    "fake-graph": _Command(
        "run a fake Graph Send API for local runs and tests", "lull.dev.fake_graph"
    ),
    "flush": _Command("make open windows due now and emit them", "lull.processor.flush"),
    "dev": _Command("run the local stack in the foreground", "lull.dev.runner"),
    "simulate": _Command(
        "send signed webhook traffic (demos, tests, load)", "lull.ops.simulate_cli"
    ),
    "stats": _Command("show streams, groups, windows and dead letters", "lull.ops.stats_cli"),
    "dead": _Command("list, show, replay or drop dead letters", "lull.ops.dead_cli"),
    "schema": _Command(
        "print the JSON Schema of the batch the bot gets or of its reply",
        "lull.common.contract.cli",
    ),
    "pause": _Command("pause the bot for one conversation (a human has it)", "lull.ops.pause_cli"),
    "resume": _Command("end a conversation's pause now", "lull.ops.resume_cli"),
    "accounts": _Command(
        "show each account's settings (LULL_ACCOUNTS), or --check a file", "lull.ops.accounts_cli"
    ),
    "conversation": _Command(
        "show one conversation: window, seq, pause, last batches", "lull.ops.conversation_cli"
    ),
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, with the options of `chosen` (all when None)."""
    parser = argparse.ArgumentParser(prog="lull", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lull {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in _COMMANDS.items():
        sub_parser = sub.add_parser(name, help=command.help, description=command.help)
        sub_parser.set_defaults(module=command.module)
        if chosen is not None and name != chosen:
            continue  # a service starts without importing the other commands' code
        try:
            module = importlib.import_module(command.module)
        except ModuleNotFoundError as exc:
            if not _is_dev_tooling(exc):
                raise
            continue  # a service image leaves lull.dev out; main() says so if it is asked for
        add_arguments: Callable[[argparse.ArgumentParser], None] | None = getattr(
            module, "add_arguments", None
        )
        if add_arguments is not None:
            add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lull` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    chosen = next((word for word in words if not word.startswith("-")), None)
    if chosen is None and "--version" in words:
        chosen = ""  # no command's options are needed: import none of their code
    args = build_parser(chosen if chosen in (*_COMMANDS, "") else None).parse_args(words)
    try:
        run: Callable[[argparse.Namespace], int] = importlib.import_module(args.module).run
    except ModuleNotFoundError as exc:
        if not _is_dev_tooling(exc):
            raise
        print(
            f"lull {args.command}: dev tooling, not installed here (a service image leaves "
            "lull.dev out); run it from a checkout: make run, or pip install -e .",
            file=sys.stderr,
        )
        return 2
    return run(args)


def installed_version() -> str:
    """The version pip installed (the package's metadata), or a word saying there is none."""
    try:
        return importlib.metadata.version("lull")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed: run from a source tree)"


def _is_dev_tooling(exc: ModuleNotFoundError) -> bool:
    return (exc.name or "").startswith("lull.dev")


if __name__ == "__main__":
    sys.exit(main())
