"""`lull simulate`: send signed webhook bursts to ingest and summarise how they were answered.

Defaults suit `lull dev` (`make run`): http://127.0.0.1:8080/webhook, the app secret from
LULL_APP_SECRET (the first one while rotating) else the dev default, 3 Messenger users
typing 3 messages each, 800 ms apart; the users are new each run (their first turn is a
first turn for the bot too) unless --user-prefix names them. A progress bar goes to stderr
when it is a terminal; the summary goes to stdout (`--json`: one object, the fields of
ops.simulate.Summary without the records). `--record PATH` writes one JSON line per POST
(the PostRecord fields). Exit 0 when every POST was answered 200, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import IO

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lull.common.settings import DEV_APP_SECRET
from lull.ops.simulate import (
    DEFAULT_CONCURRENCY,
    PostRecord,
    SimulateConfig,
    SimulateError,
    Summary,
    simulate,
)
from lull.ops.simulate_payloads import PLATFORMS

DEFAULT_URL = "http://127.0.0.1:8080/webhook"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull simulate` options."""
    add = parser.add_argument
    add("--platform", default="messenger", help=f"one of {', '.join(PLATFORMS)}")
    add("--users", type=int, default=3, help="simulated people writing at once (default 3)")
    add("--messages-per-user", type=int, default=3, help="messages each one sends (default 3)")
    add("--gap-ms", type=int, default=800, help="pause between one user's messages, jittered")
    add("--rate", type=float, default=None, help="cap on POSTs per second over the whole run")
    add("--duration", type=float, default=None, help="stop after this many seconds")
    add("--url", default=DEFAULT_URL, help=f"ingest's webhook URL (default {DEFAULT_URL})")
    add("--app-secret", default=None, help="default: LULL_APP_SECRET, else the dev secret")
    add("--allow-remote", action="store_true", help="allow a URL whose host is not loopback")
    add("--seed", type=int, default=None, help="repeatable texts and timing")
    add("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="POSTs in flight at once")
    add("--timeout", type=float, default=5.0, help="seconds per POST (default 5)")
    add("--account-id", default=None, help="page, Instagram account or phone number id")
    add(
        "--user-prefix",
        default=None,
        help="user ids are this prefix and a 6-digit number (default: fresh users each run)",
    )
    add("--media", action="store_true", help="each user also sends a picture and a voice note")
    add(
        "--media-base",
        default="http://127.0.0.1:8090",
        help="Messenger/Instagram: base URL of the demo media (default: make run's fake)",
    )
    add("--record", default=None, metavar="PATH", help="write one JSON line per POST here")
    add("--json", action="store_true", help="print the summary as one JSON object")


def _app_secret(given: str | None) -> str:
    if given:
        return given
    configured = os.environ.get("LULL_APP_SECRET", "").split(",")[0].strip()
    return configured or DEV_APP_SECRET


def config_from_args(args: argparse.Namespace) -> SimulateConfig:
    """The run the arguments describe; raises SimulateError on a bad one."""
    return SimulateConfig(
        url=args.url,
        app_secret=_app_secret(args.app_secret),
        platform=args.platform,
        users=args.users,
        messages_per_user=args.messages_per_user,
        gap_ms=args.gap_ms,
        rate_per_s=args.rate,
        duration_s=args.duration,
        timeout_s=args.timeout,
        concurrency=args.concurrency,
        seed=args.seed,
        account_id=args.account_id,
        user_prefix=args.user_prefix,
        allow_remote=args.allow_remote,
        media=args.media,
        media_base=args.media_base,
        # The CLI streams records to --record; keeping them all would only cost memory.
        keep_records=False,
    )


def run(args: argparse.Namespace) -> int:
    """`lull simulate`: 0 when every POST got 200, 1 otherwise, 2 on bad arguments."""
    try:
        config = config_from_args(args)
    except SimulateError as exc:
        print(f"lull simulate: bad arguments: {exc}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        record_file: IO[bytes] | None = None
        if args.record:
            try:
                record_file = stack.enter_context(open(args.record, "wb"))
            except OSError as exc:
                print(f"lull simulate: cannot write {args.record}: {exc}", file=sys.stderr)
                return 2
        progress = _progress(config.planned)
        if progress is not None:
            stack.enter_context(progress)
        summary = asyncio.run(_run(config, _on_post(record_file, progress)))
    if args.json:
        print(orjson.dumps(summary_json(config, summary)).decode())
    else:
        Console().print(_table(config, summary))
    return 0 if summary.all_ok else 1


async def _run(config: SimulateConfig, on_post: Callable[[PostRecord], None]) -> Summary:
    stop = asyncio.Event()
    # Ctrl-C ends the run early and still prints what was sent.
    if threading.current_thread() is threading.main_thread():
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    return await simulate(config, on_post, stop)


def _progress(total: int) -> Progress | None:
    if not sys.stderr.isatty():
        return None
    progress = Progress(
        TextColumn("POST"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[answers]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    progress.add_task("simulate", total=total, answers="")
    return progress


def _on_post(
    record_file: IO[bytes] | None, progress: Progress | None
) -> Callable[[PostRecord], None]:
    counts: dict[str, int] = {}

    def on_post(record: PostRecord) -> None:
        if record_file is not None:
            record_file.write(orjson.dumps(record) + b"\n")
        if progress is not None:
            key = "error" if record.status is None else str(record.status)
            counts[key] = counts.get(key, 0) + 1
            answers = " ".join(f"{name}: {count}" for name, count in sorted(counts.items()))
            progress.update(progress.task_ids[0], advance=1, answers=answers)

    return on_post


def summary_json(config: SimulateConfig, summary: Summary) -> dict[str, object]:
    """The --json object: the run's parameters and Summary without its records."""
    return {
        "platform": config.platform,
        "url": config.url,
        "run_id": summary.run_id,
        "planned": summary.planned,
        "posts": summary.posts,
        "statuses": {str(status): count for status, count in summary.statuses.items()},
        "errors": summary.errors,
        "error_types": summary.error_types,
        "p50_ms": summary.p50_ms,
        "p99_ms": summary.p99_ms,
        "elapsed_s": summary.elapsed_s,
        "all_ok": summary.all_ok,
    }


def _table(config: SimulateConfig, summary: Summary) -> Table:
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("target", f"{config.platform} -> {config.url}")
    statuses = ", ".join(f"{status}: {count}" for status, count in summary.statuses.items())
    errors = ", ".join(f"{kind}: {count}" for kind, count in summary.error_types.items())
    table.add_row("POSTs sent", f"{summary.posts} of {summary.planned}")
    table.add_row("statuses", statuses or "-")
    table.add_row("errors", f"{summary.errors}" + (f" ({errors})" if errors else ""))
    table.add_row("latency p50", _ms(summary.p50_ms))
    table.add_row("latency p99", _ms(summary.p99_ms))
    table.add_row("elapsed", f"{summary.elapsed_s:.2f} s")
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
