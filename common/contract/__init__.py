"""The bot's contract: the JSON Schemas of the batch it receives and of the answer it gives.

The schemas are JSON files beside this module, installed with the package, so `lull schema`
and a bot author read the same text the tests validate against. Reading them needs only the
standard library: validating against them (tests, a bot's own checks) is the reader's choice
of library.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

SCHEMAS: Final = ("batch", "reply")
"""The names `lull schema` accepts: <name>.schema.json in this package."""
VERSION: Final = 1
"""The contract version a batch carries in `version`; the same as the schemas' `const`."""


def schema_text(name: str) -> str:
    """The schema named `name` (one of SCHEMAS), as its file holds it."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema {name!r}; known: {', '.join(SCHEMAS)}")
    return resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8")
