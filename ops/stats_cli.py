"""`lull stats`: one screen of lull's state, read from Redis alone (no service needs to run).

Settings: LULL_REDIS_URL, LULL_NAMESPACE, LULL_SHARDS. `--watch [SECONDS]` refreshes (every
2 s by default) until Ctrl-C. Exit 0, 1 when Redis fails, 2 on bad configuration.

`--json` prints one JSON object (with --watch, one per refresh, one per line):

- `namespace`, `shards`, `redis_time_ms` (the Redis clock the figures were taken at)
- `inbound`: `stream`, `length` (entries), `group` ("processor"), `group_exists`, `lag`
  (entries the group has not read; the whole length when the group does not exist yet;
  null when Redis cannot tell), `pending` (read, not acknowledged)
- `outbound`: `length`, `lag` (null if any shard's is), `pending`: totals over the shards;
  `per_shard[]`: `shard` and the same fields as `inbound` (group "sender")
- `groups[]`: every consumer group on those streams: `stream`, `group`, `consumers`,
  `pending`, `lag`, `last_delivered_id`
- `consumers[]`: `stream`, `group`, `name`, `pending`, `idle_ms` (since its last read
  attempt), `inactive_ms` (since its last successful read; null before Redis 7.2)
- `windows`: `open` (total), `open_per_shard[]`, `oldest_age_ms` (now minus the earliest
  open time; null when none is open), `oldest_conversation`, `sampled` (window headers read),
  `approximate` (true when more windows were open than were read), `most_overdue_ms` (now
  minus the earliest deadline when it is past, else null), `most_overdue_conversation`
- `dead_letters`: entries in the dead-letter stream
- `delivery_failures[]`: the newest replies the platform accepted and later reported
  undelivered (WhatsApp `failed` statuses), newest first, at most 10: `at_ms` (when Meta
  reported it), `platform`, `account_id`, `message_id`, `code`, `title`, `details`,
  `conversation`, `seq` (both null when lull did not remember sending that message)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

import orjson
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lull.common.outside_text import printable
from lull.common.redis_conn import REDIS_FAILURES, RedisClient, connect, describe
from lull.common.service import run_main
from lull.common.settings import CommonSettings
from lull.common.store.keys import Keys
from lull.ops.stats import Stats, StreamStats, collect

REDIS_TIMEOUT_S = 5.0
DEFAULT_WATCH_S = 2.0
# Beyond this many shards the screen shows outbound totals instead of one row per shard.
MAX_SHARD_ROWS = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull stats` options."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=DEFAULT_WATCH_S,
        default=None,
        metavar="SECONDS",
        help=f"refresh every SECONDS (default {DEFAULT_WATCH_S:g}) until Ctrl-C",
    )


def run(args: argparse.Namespace) -> int:
    """`lull stats`: 0 ok, 1 Redis failed, 2 bad configuration."""
    if args.watch is not None and args.watch <= 0:
        print(f"lull stats: --watch must be > 0 seconds (got {args.watch:g})", file=sys.stderr)
        return 2
    try:
        return run_main(
            "stats",
            CommonSettings.from_env,
            lambda s: s,
            lambda s: _main(s, args.json, args.watch),
            one_shot=True,
        )
    except KeyboardInterrupt:
        return 0  # Ctrl-C before the watch loop took the signal over


async def _main(settings: CommonSettings, as_json: bool, watch_s: float | None) -> int:
    url = settings.effective_redis_url
    keys = settings.keys()
    client = connect(
        url, timeout_s=REDIS_TIMEOUT_S, max_connections=16, cluster=settings.redis_cluster
    )
    try:
        if watch_s is None:
            try:
                stats = await collect(client, keys)
            except REDIS_FAILURES as exc:
                print(f"lull stats: Redis at {describe(url)} failed: {exc}", file=sys.stderr)
                return 1
            _print(stats, as_json)
            return 0
        await _watch(client, keys, url, as_json, watch_s)
        return 0
    finally:
        await client.aclose()


async def _watch(client: RedisClient, keys: Keys, url: str, as_json: bool, every_s: float) -> None:
    """Refresh until Ctrl-C; a Redis failure is shown and retried at the next refresh."""
    console = Console()
    live = (
        Live(console=console, auto_refresh=False) if console.is_terminal and not as_json else None
    )
    # Ctrl-C sets a flag the loop checks, rather than cancelling whatever Redis call is in
    # flight: with cancellation, about 1 Ctrl-C in 60 left the process running.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    with live or _Nothing():
        while not stop.is_set():
            stats: Stats | None = None
            try:
                stats = await collect(client, keys)
                screen: RenderableType = render(stats)
            except REDIS_FAILURES as exc:
                failure = f"Redis at {describe(url)} failed: {exc}"
                screen = Text(failure, style="red")
                if as_json:
                    print(f"lull stats: {failure}", file=sys.stderr, flush=True)
            if live is not None:
                live.update(screen, refresh=True)
            elif as_json and stats is not None:
                print(orjson.dumps(stats_json(stats)).decode(), flush=True)
            elif not as_json:
                console.print(screen)
            # The refresh interval the operator asked for, cut short by Ctrl-C.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


class _Nothing:
    """A context manager that does nothing (no Live display off a terminal)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        return None


def _print(stats: Stats, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(stats_json(stats)).decode())
    else:
        Console().print(render(stats))


def _stream_json(stream: StreamStats) -> dict[str, Any]:
    return {
        "stream": stream.stream,
        "length": stream.length,
        "group": stream.group,
        "group_exists": stream.group_exists,
        "lag": stream.lag,
        "pending": stream.pending,
    }


def stats_json(stats: Stats) -> dict[str, Any]:
    """The --json object (field names in the module docstring)."""
    out = stats.outbound
    lags = [s.lag for s in out]
    windows = stats.windows
    return {
        "namespace": stats.namespace,
        "shards": stats.shards,
        "redis_time_ms": stats.redis_time_ms,
        "inbound": _stream_json(stats.inbound),
        "outbound": {
            "length": sum(s.length for s in out),
            "lag": None if None in lags else sum(lag or 0 for lag in lags),
            "pending": sum(s.pending for s in out),
            "per_shard": [{"shard": n, **_stream_json(s)} for n, s in enumerate(out)],
        },
        "groups": [
            {
                "stream": g.stream,
                "group": g.group,
                "consumers": g.consumers,
                "pending": g.pending,
                "lag": g.lag,
                "last_delivered_id": g.last_delivered_id,
            }
            for g in stats.groups
        ],
        "consumers": [
            {
                "stream": c.stream,
                "group": c.group,
                "name": c.name,
                "pending": c.pending,
                "idle_ms": c.idle_ms,
                "inactive_ms": c.inactive_ms,
            }
            for c in stats.consumers
        ],
        "windows": {
            "open": windows.open,
            "open_per_shard": list(windows.open_per_shard),
            "oldest_age_ms": windows.oldest_age_ms,
            "oldest_conversation": windows.oldest_conversation,
            "sampled": windows.sampled,
            "approximate": windows.approximate,
            "most_overdue_ms": windows.most_overdue_ms,
            "most_overdue_conversation": windows.most_overdue_conversation,
        },
        "dead_letters": stats.dead_letters,
        "delivery_failures": [failure.as_json() for failure in stats.delivery_failures],
    }


def duration(ms: int | None) -> str:
    """A duration for people: 850 ms, 12.3 s, 4 min 05 s, 2 h 07 min."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def render(stats: Stats) -> RenderableType:
    """The one screen: streams and groups, windows, consumers."""
    streams = Table(title="streams", title_justify="left")
    for name in ("stream", "length", "group", "lag", "pending"):
        streams.add_column(name, justify="left" if name in ("stream", "group") else "right")
    rows = [stats.inbound]
    if stats.shards <= MAX_SHARD_ROWS:
        rows += stats.outbound
    for s in rows:
        group = s.group if s.group_exists else f"{s.group} (not created)"
        streams.add_row(s.stream, str(s.length), group, _count(s.lag), str(s.pending))
    if stats.shards > MAX_SHARD_ROWS:
        out = stats.outbound
        lags = [s.lag for s in out]
        streams.add_row(
            f"outbound ({stats.shards} shards)",
            str(sum(s.length for s in out)),
            out[0].group,
            "?" if None in lags else str(sum(lag or 0 for lag in lags)),
            str(sum(s.pending for s in out)),
        )
    dead_style = "bold red" if stats.dead_letters else ""
    streams.add_row(
        f"{stats.namespace}:dead (dead letters)", Text(str(stats.dead_letters), dead_style)
    )

    w = stats.windows
    windows = Table(title="open windows", title_justify="left", show_header=False)
    windows.add_column(style="bold")
    windows.add_column(justify="right")
    windows.add_row("open", str(w.open))
    if stats.shards > 1:
        shown = w.open_per_shard[:MAX_SHARD_ROWS]
        per_shard = "  ".join(f"{shard}: {count}" for shard, count in enumerate(shown))
        more = " …" if stats.shards > MAX_SHARD_ROWS else ""
        windows.add_row("per shard", per_shard + more)
    approx = " (approximate)" if w.approximate else ""
    oldest = duration(w.oldest_age_ms) + approx
    # A conversation key holds the user's id from the webhook: text, escaped, never markup.
    oldest_key = f"  {printable(w.oldest_conversation)}" if w.oldest_conversation else ""
    windows.add_row("oldest", Text(oldest + oldest_key))
    overdue = Text(duration(w.most_overdue_ms), "bold red" if w.most_overdue_ms else "")
    if w.most_overdue_conversation:
        overdue.append(f"  {printable(w.most_overdue_conversation)}")
    windows.add_row("most overdue", overdue)

    consumers = Table(title="consumers", title_justify="left")
    for name in ("stream", "group", "consumer", "pending", "idle"):
        consumers.add_column(name, justify="right" if name in ("pending", "idle") else "left")
    for c in stats.consumers:
        consumers.add_row(
            c.stream, c.group, Text(printable(c.name)), str(c.pending), duration(c.idle_ms)
        )
    if not stats.consumers:
        consumers.add_row("-", "-", "(none)", "-", "-")
    title = Text(f"lull stats  namespace {stats.namespace}  shards {stats.shards}", style="bold")
    return Group(title, streams, windows, consumers, _failures(stats))


def _failures(stats: Stats) -> Table:
    """Replies reported undelivered after the send, newest first."""
    table = Table(title="recent delivery failures", title_justify="left")
    for name in ("ago", "conversation", "seq", "code", "title"):
        # Only the title wraps: a conversation key is what an operator copies into a log
        # search. Unmatched failures (lull does not remember the message) show their message
        # ids in --json.
        table.add_column(
            name,
            justify="right" if name in ("ago", "seq", "code") else "left",
            no_wrap=name != "title",
        )
    for f in stats.delivery_failures:
        table.add_row(
            duration(max(0, stats.redis_time_ms - f.at_ms)),
            # Text, not str: a cell's str is read as rich markup, and Meta's title may hold
            # brackets or control characters.
            Text(printable(f.conversation or "(unmatched)")),
            "-" if f.seq is None else str(f.seq),
            "-" if f.code is None else str(f.code),
            Text(printable(f.title)),
        )
    if not stats.delivery_failures:
        table.add_row("-", "(none)", "-", "-", "-")
    return table
