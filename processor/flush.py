"""`lull flush`: operators make open windows due now (shutdown drills, stuck users)."""

from __future__ import annotations

import argparse
import sys

from lull.common.conversation import BadConversation, Conversation
from lull.common.redis_conn import connect
from lull.common.service import run_main
from lull.processor.app import Processor
from lull.processor.settings import ProcessorSettings

TIMEOUT_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull flush` options."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--conversation", help="platform:account_id:user_id")
    which.add_argument("--all", action="store_true", help="every open window")


def run(args: argparse.Namespace) -> int:
    """Flush one conversation (--conversation) or every open window (--all)."""
    conversation: str | None = None
    if args.conversation is not None:
        try:
            conversation = Conversation.parse(args.conversation).key
        except BadConversation as exc:
            print(f"lull flush: {exc}", file=sys.stderr)
            return 2
    # Logs (one line per emitted batch) go to stderr; stdout keeps the command's answer.
    return run_main(
        "flush",
        ProcessorSettings.from_env,
        lambda s: s.common,
        lambda s: _flush(s, conversation, args.all),
        one_shot=True,
    )


async def _flush(settings: ProcessorSettings, conversation: str | None, everything: bool) -> int:
    client = connect(
        settings.common.effective_redis_url,
        timeout_s=TIMEOUT_S,
        cluster=settings.common.redis_cluster,
    )
    try:
        processor = Processor(client, settings)
        await processor.start()
        if conversation is not None and not await processor.store.flush(conversation):
            print(f"no open window for {conversation}")
            return 1
        # Closing is exactly-once from any process, so emit now instead of waiting for a
        # running closer's next wake-up.
        emitted, _, _ = await processor.closer.close_due(everything=everything)
        print(f"emitted {emitted} batch(es)")
        return 0
    finally:
        await client.aclose()
