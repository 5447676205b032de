"""The `lull` command: one subcommand per service or operator task."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _ingest(_args: argparse.Namespace) -> int:
    from ingest.service import main  # noqa: PLC0415  (each service imports only its own code)

    return main()


def _processor(_args: argparse.Namespace) -> int:
    from processor.service import main  # noqa: PLC0415

    return main()


def _sender(_args: argparse.Namespace) -> int:
    from sender.service import main  # noqa: PLC0415

    return main()


def _fake_graph(args: argparse.Namespace) -> int:
    from sender.fake_graph import run_fake_graph  # noqa: PLC0415

    return run_fake_graph(args.port, args.host)


def _flush(args: argparse.Namespace) -> int:
    from processor.flush import main  # noqa: PLC0415

    return main(args)


def _dev(args: argparse.Namespace) -> int:
    from common.dev import run_dev  # noqa: PLC0415

    return run_dev(services=args.services)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="lull", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
        "ingest": ("run the webhook ingest service", _ingest),
        "processor": ("run one processor replica (windows, batches)", _processor),
        "sender": ("run one sender replica (handler, Graph Send API)", _sender),
        "fake-graph": ("run a fake Graph Send API for local runs and tests", _fake_graph),
        "flush": ("make open windows due now and emit them", _flush),
        "dev": ("run the local stack (embedded Redis when none answers) in the foreground", _dev),
    }
    for name, (help_text, func) in commands.items():
        command = sub.add_parser(name, help=help_text)
        command.set_defaults(func=func)
        if name == "fake-graph":
            command.add_argument("--host", default="127.0.0.1")
            command.add_argument("--port", type=int, default=8090)
        if name == "flush":
            which = command.add_mutually_exclusive_group(required=True)
            which.add_argument("--conversation", help="platform:account_id:user_id")
            which.add_argument("--all", action="store_true", help="every open window")
        if name == "dev":
            command.add_argument(
                "--services", nargs="+", default=None, help="which services to run (default: all)"
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lull` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
