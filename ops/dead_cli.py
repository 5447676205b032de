"""`lull dead`: operators inspect dead letters, and send them back after fixing the cause.

    lull dead list [--limit N] [--json]     oldest first
    lull dead show ID                       every field, JSON bodies pretty-printed
    lull dead replay ID [ID ...] | --all    back to the stream each came from
    lull dead drop ID [ID ...]              delete for good

IDs are the letters' ids in the dead-letter stream `{ns}:dead` (the first column of list).
Replay is idempotent: a replayed entry that was already processed is skipped by the normal
dedupe. Settings: LULL_REDIS_URL, LULL_REDIS_CLUSTER, LULL_NAMESPACE, LULL_SHARDS. Exit 0 ok;
1 when an id was not found, a letter could not be replayed, or Redis failed; 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence

import orjson

from lull.common.outside_text import printable
from lull.common.redis_conn import REDIS_FAILURES, connect, describe
from lull.common.service import run_main
from lull.common.settings import CommonSettings
from lull.ops.dead import DeadLetter, DeadLetters, Replayed, is_entry_id, iso_time

REDIS_TIMEOUT_S = 5.0
DEFAULT_LIMIT = 50
REASON_CHARS = 60
# Fields that hold JSON worth indenting in `show`: the sender's batch, the raw webhook body.
JSON_FIELDS = (b"batch", b"body")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lull dead` actions and their options."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list dead letters, oldest first")
    listing.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"at most N (default {DEFAULT_LIMIT})"
    )
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    show = actions.add_parser("show", help="every field of one dead letter")
    show.add_argument("id", help="the letter's id in the dead-letter stream")
    replay = actions.add_parser("replay", help="send dead letters back to their source stream")
    replay.add_argument("ids", nargs="*", metavar="ID", help="letters to replay")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    drop = actions.add_parser("drop", help="delete dead letters for good")
    drop.add_argument("ids", nargs="+", metavar="ID", help="letters to delete")


def run(args: argparse.Namespace) -> int:
    """Run one `lull dead` action; the exit code is in the module docstring."""
    problem = _usage_problem(args)
    if problem:
        print(f"lull dead {args.action}: {problem}", file=sys.stderr)
        return 2
    return run_main(
        "dead", CommonSettings.from_env, lambda s: s, lambda s: _main(s, args), one_shot=True
    )


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.action == "list" and args.limit < 1:
        return f"--limit must be >= 1 (got {args.limit})"
    if args.action == "replay" and bool(args.ids) == bool(args.all):
        return "give the ids to replay, or --all (not both)"
    ids = [args.id] if args.action == "show" else getattr(args, "ids", [])
    bad = [i for i in ids if not is_entry_id(i)]
    if bad:
        return f"not a stream entry id (ms-seq): {', '.join(bad)}"
    return None


async def _main(settings: CommonSettings, args: argparse.Namespace) -> int:
    url = settings.effective_redis_url
    client = connect(
        url, timeout_s=REDIS_TIMEOUT_S, max_connections=4, cluster=settings.redis_cluster
    )
    letters = DeadLetters(client, settings.keys())
    actions: dict[str, Callable[[DeadLetters, argparse.Namespace], Awaitable[int]]] = {
        "list": _list,
        "show": _show,
        "replay": _replay,
        "drop": _drop,
    }
    try:
        return await actions[args.action](letters, args)
    except REDIS_FAILURES as exc:
        print(f"lull dead: Redis at {describe(url)} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()


async def _list(letters: DeadLetters, args: argparse.Namespace) -> int:
    found = await letters.first(args.limit)
    if args.json:
        print(orjson.dumps([letter.summary() for letter in found]).decode())
        return 0
    total = await letters.count()
    rows = [["ID", "DEAD AT", "SOURCE", "GROUP", "DELIVERIES", "REASON", "PREVIEW"]]
    for letter in found:
        # Reasons quote the bot and Meta, previews the users: escaped for the terminal.
        reason = printable(letter.reason)
        if len(reason) > REASON_CHARS:
            reason = reason[: REASON_CHARS - 1] + "…"
        deliveries = "?" if letter.deliveries is None else str(letter.deliveries)
        rows.append(
            [
                letter.id,
                iso_time(letter.dead_at_ms),
                letter.source,
                letter.meta(b"_group"),
                deliveries,
                reason,
                printable(letter.preview()),
            ]
        )
    if found:
        for line in _columns(rows):
            print(line)
    print(f"{len(found)} of {total} dead letter(s)")
    return 0


async def _show(letters: DeadLetters, args: argparse.Namespace) -> int:
    letter = await letters.get(args.id)
    if letter is None:
        return _not_found([args.id])
    deliveries = "?" if letter.deliveries is None else str(letter.deliveries)
    print(f"id:          {letter.id}")
    print(f"source:      {letter.source} (entry {letter.meta(b'_id')})")
    print(f"group:       {letter.meta(b'_group')} (consumer {letter.meta(b'_consumer')})")
    print(f"reason:      {printable(letter.reason)}")
    print(f"deliveries:  {deliveries}")
    print(f"dead at:     {iso_time(letter.dead_at_ms)}")
    marked = await letters.marked(letter)
    if marked is not None:
        answer = "delivered" if marked else "skipped: the batch is not marked dead"
        print(f"replay:      {answer}")
    for name, value in letter.payload.items():
        print(f"{printable(name.decode(errors='replace'))}:")
        print(_indented(printable(_pretty(name, value), one_line=False)))
    return 0


async def _replay(letters: DeadLetters, args: argparse.Namespace) -> int:
    status = 0
    if args.all:
        result = await letters.replay_all()
    else:
        found, missing = await _fetch(letters, args.ids)
        if missing:
            status = _not_found(missing)
        result = await letters.replay(found)
    _report_replay(result)
    return 1 if result.refused else status


def _report_replay(result: Replayed) -> None:
    skipped = {letter.id for letter in result.skipped}
    for letter, new_id in result.done:
        print(f"replayed {letter.id} -> {letter.source} {new_id}")
        if letter.id in skipped:
            batch = letter.batch() or {}
            print(
                f"  note: batch {batch.get('batch_id')} is not marked dead (delivered since?): "
                "the sender will skip it as a duplicate"
            )
    for letter, why in result.refused:
        print(f"lull dead replay: not replayed {letter.id}: {why}", file=sys.stderr)
    refused = f", {len(result.refused)} not replayed" if result.refused else ""
    print(f"replayed {len(result.done)} dead letter(s){refused}")


async def _drop(letters: DeadLetters, args: argparse.Namespace) -> int:
    found, missing = await _fetch(letters, args.ids)
    status = _not_found(missing) if missing else 0
    dropped = 0
    for letter in found:
        if await letters.drop(letter):
            dropped += 1
            print(f"dropped {letter.id} ({letter.source}: {printable(letter.reason)})")
        else:
            status = _not_found([letter.id])  # deleted by someone else meanwhile
    print(f"dropped {dropped} dead letter(s)")
    return status


async def _fetch(letters: DeadLetters, ids: Sequence[str]) -> tuple[list[DeadLetter], list[str]]:
    found: list[DeadLetter] = []
    missing: list[str] = []
    for letter_id in dict.fromkeys(ids):  # each id once, in the order given
        letter = await letters.get(letter_id)
        if letter is None:
            missing.append(letter_id)
        else:
            found.append(letter)
    return found, missing


def _not_found(ids: Sequence[str]) -> int:
    for letter_id in ids:
        print(f"lull dead: no dead letter {letter_id}", file=sys.stderr)
    return 1


def _pretty(name: bytes, value: bytes) -> str:
    """JSON fields indented; anything else (an unparsable body too) as text."""
    if name in JSON_FIELDS:
        try:
            return orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            pass  # shown as it is: often the reason it died
    return value.decode(errors="replace")


def _indented(block: str) -> str:
    return "\n".join("  " + line for line in block.splitlines() or [""])


def _columns(rows: list[list[str]]) -> list[str]:
    """Rows as lines, every column but the last padded to its widest cell."""
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
