"""`lull pause CONVERSATION [--for DURATION]`: the bot stops answering one conversation.

Without --for the pause lasts like a human turn on the conversation's account (its
human_pause_ms in the accounts file, else LULL_HUMAN_PAUSE_MS; at most its
human_pause_max_ms, else LULL_HUMAN_PAUSE_MAX_MS, after it began); with it, exactly that
long from now. Windows still open and close meanwhile; their batches are finished as paused,
never answered later.
"""

from __future__ import annotations

import argparse

from lull.common.conversation_control import ConversationControl
from lull.ops.takeover_cli import add_common_arguments, by_argument, duration_ms, run_takeover, who


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull pause` options."""
    add_common_arguments(parser)
    parser.add_argument(
        "--for",
        dest="for_ms",
        type=duration_ms,
        default=0,
        metavar="DURATION",
        help="how long: 90s, 30m, 2h, 1d (default: as a human turn, the account's "
        "human_pause_ms or LULL_HUMAN_PAUSE_MS)",
    )
    by_argument(parser)


def run(args: argparse.Namespace) -> int:
    """`lull pause`: 0 paused, 1 Redis failed, 2 bad input or configuration."""
    for_ms, by = int(args.for_ms), who(args)

    async def pause(takeover: ConversationControl, conversation: str) -> None:
        await takeover.pause(conversation, for_ms=for_ms, by=by)

    return run_takeover("pause", args, pause)
