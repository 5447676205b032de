"""`lull pause`, `lull resume`, `lull conversation`: the operator's side of human takeover.

Settings: LULL_REDIS_URL, LULL_NAMESPACE, LULL_SHARDS, LULL_HUMAN_PAUSE_MS,
LULL_HUMAN_PAUSE_MAX_MS and LULL_ACCOUNTS (a pause without --for lasts like a human turn on
the conversation's account: its human_pause_ms in the accounts file, else the "*" table's,
else the environment's). Exit 0, 1 when Redis fails (and, for `lull conversation`, when
Redis holds nothing about the conversation: not found), 2 on bad input or configuration
(an accounts file with a mistake included). `--json` prints one JSON object: the
conversation's state (common/store/conversations.py) after the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

import orjson

from lull.common.accounts_reload import LiveAccounts
from lull.common.conversation import Conversation
from lull.common.conversation_control import ConversationControl
from lull.common.pause_times import PauseTimes
from lull.common.redis_conn import REDIS_FAILURES, connect, describe
from lull.common.service import run_main
from lull.common.store.keys import Keys
from lull.ops.takeover import OperatorSettings, operator_name, parse_duration_ms, render

REDIS_TIMEOUT_S = 5.0
Body = Callable[[ConversationControl, str], Awaitable[None]]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The conversation and --json, which every takeover command takes."""
    parser.add_argument("conversation", help="platform:account_id:user_id, as lull logs it")
    parser.add_argument("--json", action="store_true", help="print the state as one JSON object")


def run_takeover(command: str, args: argparse.Namespace, body: Body | None) -> int:
    """Check the conversation, run body (None: only show), then print the state."""
    try:
        conversation = Conversation.parse(args.conversation).key
    except ValueError as exc:
        print(f"lull {command}: {exc}", file=sys.stderr)
        return 2
    return run_main(
        command,
        OperatorSettings.from_env,
        lambda s: s.common,
        lambda s: _main(command, s, conversation, body, args.json),
        one_shot=True,
    )


async def _main(
    command: str, settings: OperatorSettings, conversation: str, body: Body | None, as_json: bool
) -> int:
    common = settings.common
    url = common.effective_redis_url
    client = connect(
        url, timeout_s=REDIS_TIMEOUT_S, max_connections=4, cluster=common.redis_cluster
    )
    accounts = None if settings.accounts is None else LiveAccounts(settings.accounts)
    pause_times = PauseTimes(settings.pause, accounts)
    takeover = ConversationControl(client, Keys(common.namespace, common.shards), pause_times)
    try:
        if body is not None:
            await body(takeover, conversation)
        state = await takeover.state(conversation)
    except REDIS_FAILURES as exc:
        print(f"lull {command}: Redis at {describe(url)} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    print(orjson.dumps(state.to_dict()).decode() if as_json else render(state))
    # Showing a conversation Redis knows nothing of is "not found", like lull dead show: a
    # script that checks the exit code must not take a typo in the id for an idle user.
    return 0 if body is not None or state.known else 1


def duration_ms(text: str) -> int:
    """argparse type for --for: a clear message on bad input."""
    try:
        return parse_duration_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def by_argument(parser: argparse.ArgumentParser) -> None:
    """--by NAME: who pauses or resumes (shown by lull conversation)."""
    parser.add_argument(
        "--by",
        default=None,
        help="who you are, shown with the pause (default: $LULL_OPERATOR, $USER)",
    )


def who(args: argparse.Namespace) -> str:
    """The --by name, else the operator's."""
    return str(args.by) if args.by else operator_name()
