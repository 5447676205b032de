"""Fuzz target: ingest's envelope check and the platform normalisers, fed arbitrary bytes.

Run it from the repository root:

    python -m tests.fuzz.fuzz_normalisers --seconds 60            # whatever engine is there
    python -m tests.fuzz.fuzz_normalisers --engine random --seed 7 --seconds 10
    python -m tests.fuzz.fuzz_normalisers --engine atheris --seconds 600 --crash-dir crashes/

Engines. `atheris` (coverage-guided libFuzzer; `pip install atheris`, not a dependency of
lull) starts from the webhook fixtures as its corpus. `random` (always there) is a bounded
loop that mutates the fixtures: byte flips, inserts, deletes, truncations, splices of two
bodies, a field replaced by a value of the wrong type, deep nesting, invalid UTF-8. `auto`
(the default) takes atheris when it imports, else random.

Each input must satisfy (one_input):
- ingest.app.envelope_problem returns None or one of its reasons, and never raises;
- processor.platforms.parse returns well-typed events (tests/common/test_platforms_fuzz.py,
  check) or raises MalformedBody, and nothing else;
- a body ingest accepts is never MalformedBody to the processor.

A failing input is written to --crash-dir (default: the current directory) as
crash-<sha1>.bin and the run exits 1; otherwise it prints how many inputs it tried and
exits 0. A quick run is part of the test suite (tests/fuzz/test_fuzz_normalisers.py).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from lull.common.events import MalformedBody
from lull.ingest.app import envelope_problem
from tests.conftest import FIXTURES

ENVELOPE_REASONS = frozenset((None, "not_json", "not_an_object", "no_object", "no_entry_list"))
WRONG_VALUES: tuple[Any, ...] = (
    None, True, 0, -1, 1.5, 2**63, 2**64, "", "x", "\x00", "1763800000", "9" * 30, [], {},
    [None], {"id": None}, {"type": "text"}, "x" * 5000,
)  # fmt: skip
BAD_BYTES = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\x80", b"\x00", b'"', b"\\", b"[", b"{")


class FuzzFailure(AssertionError):
    """An input broke one of the properties one_input checks."""


def one_input(data: bytes) -> None:
    """Check every property for one input; raises FuzzFailure (or what crashed) if one fails."""
    # Imported here: the test module pulls in hypothesis and pytest, which atheris would
    # otherwise instrument along with lull.
    from tests.common.test_platforms_fuzz import check  # noqa: PLC0415

    problem = envelope_problem(data)
    if problem not in ENVELOPE_REASONS:
        raise FuzzFailure(f"unknown envelope reason {problem!r}")
    try:
        parsed = check(data)
    except MalformedBody as exc:  # check lets only MalformedBody through as None
        raise FuzzFailure(f"MalformedBody escaped check: {exc}") from exc
    if parsed is None and problem is None:
        raise FuzzFailure("ingest accepts this body but the processor calls it malformed")


def corpus() -> list[bytes]:
    """The webhook fixtures: valid bodies of every platform, the starting points."""
    return [path.read_bytes() for path in sorted(FIXTURES.glob("*/*.json"))]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace_field(rng: random.Random, body: bytes) -> bytes:
    try:
        return _replaced(rng, body)
    except (ValueError, RecursionError):
        # Not JSON, or nested deeper than Python's own json recurses: mutate the bytes instead.
        return body[: rng.randrange(len(body) + 1)]


def _replaced(rng: random.Random, body: bytes) -> bytes:
    doc = json.loads(body)
    path = rng.choice(_paths(doc))
    if not path:
        return json.dumps(rng.choice(WRONG_VALUES)).encode()
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if rng.random() < 0.2:
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(WRONG_VALUES)
    return json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One random mutation (sometimes a few stacked) of a corpus body."""
    body = rng.choice(seeds)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        at = rng.randrange(len(body) + 1)
        match rng.randrange(8):
            case 0 | 1:
                body = _replace_field(rng, body)
            case 2:
                body = body[:at] + rng.choice(BAD_BYTES) + body[at:]
            case 3:
                body = body[:at] + body[at + rng.randrange(1, 16) :]
            case 4:
                body = body[:at]
            case 5:
                other = rng.choice(seeds)
                body = body[:at] + other[rng.randrange(len(other)) :]
            case 6:
                depth = rng.choice((10, 255, 1023, 1024, 5000))
                body = body[:at] + b"[" * depth + b"]" * depth + body[at:]
            case _:
                if body:
                    flip = rng.randrange(len(body))
                    body = (
                        body[:flip]
                        + bytes([body[flip] ^ (1 << rng.randrange(8))])
                        + body[flip + 1 :]
                    )
    return body


def _save(crash_dir: Path, data: bytes) -> Path:
    crash_dir.mkdir(parents=True, exist_ok=True)
    path = crash_dir / f"crash-{hashlib.sha1(data).hexdigest()}.bin"  # noqa: S324  (a file name)
    path.write_bytes(data)
    return path


def run_random(seconds: float, seed: int, crash_dir: Path) -> int:
    """Mutate the corpus for `seconds`; 0 when every input passed, 1 at the first failure."""
    rng = random.Random(seed)
    seeds = corpus()
    deadline = time.monotonic() + seconds
    tried = 0
    for data in seeds:
        one_input(data)
    while time.monotonic() < deadline:
        data = mutate(rng, seeds)
        tried += 1
        try:
            one_input(data)
        except Exception:  # every failure is reported with its input, then the run ends
            traceback.print_exc()
            print(f"fuzz_normalisers: failing input saved to {_save(crash_dir, data)}")
            return 1
    print(f"fuzz_normalisers: {tried} inputs in {seconds:g} s (random, seed {seed}), no failure")
    return 0


def run_atheris(atheris: Any, seconds: float, crash_dir: Path, extra: list[str]) -> int:
    """Coverage-guided fuzzing with libFuzzer; the fixtures are written out as its corpus."""
    seed_dir = crash_dir / "corpus"
    seed_dir.mkdir(parents=True, exist_ok=True)
    for data in corpus():
        (seed_dir / hashlib.sha1(data).hexdigest()).write_bytes(data)  # noqa: S324
    argv = [sys.argv[0], f"-max_total_time={int(seconds)}",
            f"-artifact_prefix={crash_dir}/", *extra, str(seed_dir)]  # fmt: skip
    with atheris.instrument_imports():
        importlib.import_module("lull.common.platforms")
    atheris.Setup(argv, one_input)
    atheris.Fuzz()  # exits the process itself, with libFuzzer's status
    return 0


def _load_atheris(engine: str) -> Any:
    if engine == "random":
        return None
    try:
        return importlib.import_module("atheris")
    except ImportError:
        if engine == "atheris":
            raise SystemExit(
                "fuzz_normalisers: atheris is not installed (pip install atheris)"
            ) from None
        return None


def main(argv: list[str] | None = None) -> int:
    """Parse the options and fuzz; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.fuzz_normalisers")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to fuzz")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--seed", type=int, default=None, help="random engine seed")
    parser.add_argument("--crash-dir", type=Path, default=Path(), help="where inputs go")
    args, extra = parser.parse_known_args(argv)
    atheris = _load_atheris(args.engine)
    if atheris is not None:
        return run_atheris(atheris, args.seconds, args.crash_dir, extra)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"fuzz_normalisers: random engine, seed {seed}, {args.seconds:g} s", flush=True)
    return run_random(args.seconds, seed, args.crash_dir)


if __name__ == "__main__":
    sys.exit(main())
