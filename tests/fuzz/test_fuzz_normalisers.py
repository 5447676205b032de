"""The fuzz target runs as documented, briefly, and finds nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fuzz.fuzz_normalisers import corpus, one_input


def test_corpus_passes() -> None:
    for body in corpus():
        one_input(body)


def test_two_seconds_of_random_fuzzing(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tests.fuzz.fuzz_normalisers", "--engine", "random",
               "--seconds", "2", "--crash-dir", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    assert "no failure" in output
    assert list(tmp_path.iterdir()) == []
