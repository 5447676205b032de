"""docs/contract.md's generated parts: the field tables (from the schemas) and the example
batches (from tests/contract/examples.py), each between two markers:

    <!-- generated: fields batch -->
    …
    <!-- end generated -->

`LULL_WRITE_DOCS=1 pytest tests/contract/test_docs.py` writes them; otherwise the tests
check that the file holds what they would write.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from tests.contract.fields import fields

DOC = Path(__file__).resolve().parents[2] / "docs" / "contract.md"
WRITE_ENV = "LULL_WRITE_DOCS"
_BLOCK = re.compile(
    r"(<!-- generated: (?P<key>[a-z: ]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.DOTALL
)


def blocks(text: str) -> dict[str, str]:
    """The body of every generated block, by its key (`fields batch`, `example whatsapp`)."""
    return {m["key"]: m["body"] for m in _BLOCK.finditer(text)}


def replace_blocks(text: str, bodies: dict[str, str]) -> str:
    """text with the bodies of the named blocks replaced (others kept)."""
    return _BLOCK.sub(
        lambda m: m[1] + bodies.get(m["key"], m["body"]) + m[4],
        text,
    )


def table(name: str) -> str:
    """The Markdown table of every field of schema `name`."""
    rows = ["| Field | Type | Required | Meaning | Example |", "|---|---|---|---|---|"]
    for field in fields(name):
        example = "" if field.example is None else _code(orjson.dumps(field.example).decode())
        meaning = field.description.replace("|", "\\|").replace("\n", " ")
        required = "yes" if field.required else "no"
        rows.append(f"| `{field.path}` | {field.type} | {required} | {meaning} | {example} |")
    return "\n".join(rows) + "\n"


def table_paths(body: str) -> list[str]:
    """The field paths a table lists, in order (its first column)."""
    return re.findall(r"^\| `([^`]+)` \|", body, re.MULTILINE)


def example(batch: dict[str, Any]) -> str:
    """A batch as a JSON block."""
    return "```json\n" + orjson.dumps(batch, option=orjson.OPT_INDENT_2).decode() + "\n```\n"


def example_json(body: str) -> Any:
    """The batch a generated example block shows."""
    return orjson.loads(body.removeprefix("```json\n").removesuffix("```\n"))


def _code(text: str) -> str:
    # A backtick inside would end the code span early; none of the schemas' examples has one.
    return f"`{text.replace('|', chr(92) + '|')}`"
