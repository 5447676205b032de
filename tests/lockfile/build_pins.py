"""`make lock`: pin the build backend (pyproject's build-constraint-dependencies) to the
versions the lock just chose, so lull's own wheel is built with what the suite ran with.

Standard library only (`python3 -m tests.lockfile.build_pins`, before anything is installed).
"""

from __future__ import annotations

import re
import sys

from tests.lockfile.locked import BUILD_BACKEND, PYPROJECT, locked_versions

LINE = re.compile(r"^build-constraint-dependencies = \[.*\]$", re.MULTILINE)


def main() -> int:
    """Rewrite the pins line; say what changed."""
    versions = locked_versions()
    pins = ", ".join(f'"{name}=={versions[name]}"' for name in BUILD_BACKEND)
    text = PYPROJECT.read_text(encoding="utf-8")
    new, count = LINE.subn(f"build-constraint-dependencies = [{pins}]", text)
    if count != 1:
        print("pyproject.toml: no build-constraint-dependencies line to rewrite", file=sys.stderr)
        return 1
    if new != text:
        PYPROJECT.write_text(new, encoding="utf-8")
        print(f"build backend pinned to {pins}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
