"""`lull schema batch|reply`: print the bot's contract as JSON Schema (draft 2020-12)."""

from __future__ import annotations

import argparse
import sys

from lull.common.contract import SCHEMAS, schema_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The schema to print."""
    parser.add_argument(
        "name",
        choices=SCHEMAS,
        help="batch: what the bot receives; reply: what it answers",
    )


def run(args: argparse.Namespace) -> int:
    """Print the schema to stdout."""
    sys.stdout.write(schema_text(args.name))
    return 0
