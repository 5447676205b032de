"""`lull resume CONVERSATION`: end a pause now; the bot answers the next batch.

Batches finished as paused stay unanswered: the bot sees them in the history.
"""

from __future__ import annotations

import argparse

from lull.common.conversation_control import ConversationControl
from lull.ops.takeover_cli import add_common_arguments, by_argument, run_takeover, who


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull resume` options."""
    add_common_arguments(parser)
    by_argument(parser)


def run(args: argparse.Namespace) -> int:
    """`lull resume`: 0 resumed (or was not paused), 1 Redis failed, 2 bad input."""
    by = who(args)

    async def resume(takeover: ConversationControl, conversation: str) -> None:
        await takeover.resume(conversation, by=by)

    return run_takeover("resume", args, resume)
