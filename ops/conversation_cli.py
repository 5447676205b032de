"""`lull conversation CONVERSATION`: what lull holds about one conversation now.

Open window (messages, deadline), seq closed and finished, the pause (until when, why, by
whom, since), the user's last message, and the last finished batches with their outcomes.
"""

from __future__ import annotations

import argparse

from lull.ops.takeover_cli import add_common_arguments, run_takeover


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull conversation` options."""
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """`lull conversation`: 0 shown, 1 nothing recorded (not found) or Redis failed, 2 bad
    input or configuration."""
    return run_takeover("conversation", args, None)
