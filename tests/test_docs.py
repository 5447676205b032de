"""The README and docs/ say what the code does (issue 21): the settings tables, the options of
`lull simulate`, what a `python:` handler returns, the Redis retry; and they say what is,
with the history in CHANGELOG.md."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from lull.common.env import ConfigError
from lull.common.startup import MAX_BACKOFF_MS, RETRY_EVENT
from lull.common.variables import SERVICE_VARIABLES
from lull.ingest.settings import IngestSettings
from lull.ops import simulate_cli
from lull.processor.settings import ProcessorSettings
from lull.sender.bot import BotPermanent, PythonBot
from lull.sender.settings import SenderSettings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHANGELOG = ROOT / "CHANGELOG.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
CONFIGURATION = ROOT / "docs" / "configuration.md"
# Reports of dated measurements compare releases on purpose; every other page is reference.
REPORTS = {"performance.md", "reliability.md"}
CHANGELOG_PHRASES = re.compile(
    r"\b(no longer|now (read|counted|refused|shown|sent|accepted)|is now|are now|gains|"
    r"used to)\b"
    # a release (lull 0.1, 0.1's), not an address (127.0.0.1) or a time (0.1 s)
    r"|(?<![\d.])0\.1(?![\d.]| s\b)"
)
UPGRADE_SECTION = re.compile(r"^### From 0\.1 to 0\.2$.*?(?=^#)", re.MULTILINE | re.DOTALL)

SETTINGS: dict[str, Callable[[Mapping[str, str]], Any]] = {
    "ingest": IngestSettings.from_env,
    "processor": ProcessorSettings.from_env,
    "sender": SenderSettings.from_env,
}
REQUIRED = {"LULL_APP_SECRET": "s", "LULL_VERIFY_TOKEN": "t", "LULL_HANDLER": "echo"}
LITERAL_DEFAULT = re.compile(r"^`([^`$]+)`( \([^)]*\))?$")
# Defaults a sentence describes (unset, required, derived from another setting): the
# literal ones are checked against the code below.
DESCRIBED_DEFAULTS = frozenset(
    {
        "LULL_LOG_FORMAT",  # console on a terminal, else json
        "LULL_VERIFY_TOKEN",  # required
        "LULL_APP_SECRET",
        "LULL_HANDLER",
        "LULL_HANDLER_SECRET",  # empty
        "LULL_ACCESS_TOKENS",
        "LULL_MAX_LATENESS_MS",  # half of LULL_WINDOW_MS
        "LULL_HISTORY_TTL_S",  # not a setting: refused
        "LULL_INBOUND_DRAIN",  # unset: no former count read
        "LULL_GRAPH_API_BASE_MESSENGER",  # LULL_GRAPH_API_BASE, else Meta's host
        "LULL_GRAPH_API_BASE_INSTAGRAM",
        "LULL_GRAPH_API_BASE_WHATSAPP",
        "LULL_TYPING_REFRESH_MS",  # per platform
        "LULL_META_APP_ID",  # unset
        "LULL_ACCOUNTS",  # unset: no accounts file
        "LULL_HANDOFF_WEBHOOK",
        "LULL_ADMIN_TOKEN",
        "LULL_API_TOKEN",
        "LULL_OPERATOR",  # $USER
        "LULL_MEDIA_SECRET",  # unset: no media links
        "LULL_MEDIA_PUBLIC_URL",  # from LULL_MEDIA_PORT
        "LULL_TRANSCRIBE_URL",  # unset: no transcription
        "LULL_TRANSCRIBE_API_KEY",
    }
)


def _tables(path: Path) -> list[list[list[str]]]:
    """The markdown tables of path, each a list of rows of stripped cells, header first."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def settings_rows(path: Path) -> list[tuple[str, str]]:
    """(first cell, default cell) of every row of the settings tables of path: those whose
    header names a variable (or setting) and a default."""
    rows: list[tuple[str, str]] = []
    for header, *body in _tables(path):
        names = [cell.lower() for cell in header]
        if names[0] in ("variable", "setting") and "default" in names:
            default = names.index("default")
            rows.extend((row[0], row[default]) for row in body)
    return rows


def _documented_defaults() -> dict[str, str]:
    return {name.strip("`"): default for name, default in settings_rows(CONFIGURATION)}


def test_the_settings_tables_have_one_row_per_known_variable() -> None:
    # A stray `LULL_READ_RECEIPTS=arrival` row, with a cost in its default column, sat in
    # two of them.
    reference = _documented_defaults()
    for path in [README, *DOCS]:
        rows = settings_rows(path)
        names = [name for name, _ in rows]
        for name, default in rows:
            assert re.fullmatch(r"`LULL_[A-Z0-9_]+`", name), f"{path.name}: row {name!r}"
            assert name.strip("`") in SERVICE_VARIABLES, f"{path.name}: {name} is read by none"
            assert names.count(name) == 1, f"{path.name}: {name} has {names.count(name)} rows"
            # One truth: the same default wherever a variable is listed.
            assert default == reference.get(name.strip("`")), f"{path.name}: {name}'s default"
    assert sorted(reference) == sorted(SERVICE_VARIABLES), "docs/configuration.md: one row each"


def _settings(env: Mapping[str, str]) -> dict[str, Any]:
    return {service: load({**REQUIRED, **env}) for service, load in SETTINGS.items()}


@pytest.mark.parametrize("name", sorted(_documented_defaults()))
def test_the_default_column_holds_the_default(name: str) -> None:
    default = _documented_defaults()[name]
    literal = LITERAL_DEFAULT.match(default)
    if name in DESCRIBED_DEFAULTS:
        assert literal is None, f"{name}: {default} is a plain value now; check it"
        return
    assert literal is not None, f"{name}: default {default!r} is not one value in backticks"
    value = literal.group(1)
    if name == "LULL_REDIS_URL":  # unset means "the local default" (lull dev may start one)
        assert _settings({})["ingest"].common.effective_redis_url == value
        return
    try:
        given = _settings({name: value})
    except ConfigError as exc:
        pytest.fail(f"{name}={value!r}, its documented default, is refused: {exc}")
    assert given == _settings({}), f"{name}={value!r} is not what lull does when it is unset"


def test_readme_lists_every_simulate_option() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    simulate_cli.add_arguments(parser)
    options = {o for action in parser._actions for o in action.option_strings}
    text = README.read_text(encoding="utf-8")
    usage = text[text.index("- `lull simulate [") :]
    usage = usage[: usage.index("\n- ")]
    assert sorted(o for o in options if f"[{o}" not in usage) == []


def _paragraphs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if len(p) >= 80]


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_no_paragraph_is_written_twice(path: Path) -> None:
    # docs/takeover.md opened with its first paragraph twice (the second a shorter copy).
    paragraphs = _paragraphs(path)
    for i, paragraph in enumerate(paragraphs):
        for j, other in enumerate(paragraphs):
            assert i == j or paragraph not in other, f"{path.name}: {paragraph[:80]}…"


@pytest.mark.parametrize("path", [p for p in DOCS if p.name not in REPORTS], ids=lambda p: p.name)
def test_reference_pages_say_what_is(path: Path) -> None:
    # "now read by", "no longer counted": history belongs in CHANGELOG.md. The steps of an
    # upgrade from 0.1 are a procedure, and stay in docs/operations.md.
    text = UPGRADE_SECTION.sub("", path.read_text(encoding="utf-8"))
    found = [line.strip() for line in text.splitlines() if CHANGELOG_PHRASES.search(line.lower())]
    assert found == [], f"{path.name}: move the history to CHANGELOG.md"


def test_the_changelog_has_the_upgrade_from_0_1_and_a_heading_for_the_next() -> None:
    headings = re.findall(r"^## (.+)$", CHANGELOG.read_text(encoding="utf-8"), re.MULTILINE)
    assert headings[:2] == ["0.3 (unreleased)", "0.2"]


async def _python_answer(answer: object) -> object:
    async def function(batch: dict[str, Any]) -> Any:
        return answer

    return await PythonBot(function, timeout_ms=1000)({"batch_id": "b"})


async def test_what_a_python_handler_returns_is_said_once_and_true() -> None:
    # docs/contract.md said the replies array only, docs/takeover.md the answer object too.
    contract = " ".join((ROOT / "docs" / "contract.md").read_text(encoding="utf-8").split())
    said = (
        "It returns the `replies` array itself (`[]`: send nothing), or, to hand off, the "
        "answer object with its `handoff`"
    )
    assert said in contract
    assert '`{"replies": [...]}` without `handoff`, is refused' in contract
    replies = [{"text": "hi"}]
    assert await _python_answer(replies) == replies
    handoff = {"replies": replies, "handoff": {"reason": "asked"}}
    assert await _python_answer(handoff) == handoff
    with pytest.raises(BotPermanent):
        await _python_answer({"replies": replies})
    # The other pages point at the contract rather than say it again their own way.
    for page in (README, ROOT / "docs" / "takeover.md", ROOT / "examples/python_handler/README.md"):
        assert "contract.md#how-the-bot-gets-a-batch" in page.read_text(encoding="utf-8"), page


def test_the_redis_retry_is_documented_as_the_code_does_it() -> None:
    # Standalone services retry an unreachable Redis for ever, a warning every 5 s.
    operations = " ".join((ROOT / "docs" / "operations.md").read_text(encoding="utf-8").split())
    assert f"`{RETRY_EVENT}`" in operations
    assert f"then every {MAX_BACKOFF_MS // 1000} s" in operations
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert f"retries for ever, with a warning line every {MAX_BACKOFF_MS // 1000} s" in readme
