"""The reply schema and the sender's own checks agree, on every answer in
tests/fixtures/replies: both accept each valid answer and both refuse each invalid one."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from lull.common.replies import BotAnswer, parse_answer
from lull.sender.bot import BotPermanent, _read_answer
from tests.conftest import FIXTURES
from tests.contract.check import problems

REPLIES = FIXTURES / "replies"
VALID = sorted((REPLIES / "valid").glob("*.json"))
INVALID = sorted((REPLIES / "invalid").glob("*.json"))


def _sender_reads(body: bytes) -> BotAnswer:
    """What the sender makes of an HTTP bot's 200 answer: the handler's reading of the body
    (sender/bot.py), then the replies' validation (common/replies.py), as deliver.py does."""
    return parse_answer(_read_answer(200, body, None))


def test_there_are_fixtures_of_both_kinds() -> None:
    assert len(VALID) >= 5 and len(INVALID) >= 10


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_a_valid_answer_is_accepted_by_schema_and_sender(path: Path) -> None:
    assert problems("reply", _load(path)) == []
    _sender_reads(path.read_bytes())


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_an_invalid_answer_is_refused_by_schema_and_sender(path: Path) -> None:
    assert problems("reply", _load(path)) != []
    with pytest.raises((BotPermanent, ValueError)):
        _sender_reads(path.read_bytes())


def _load(path: Path) -> object:
    return orjson.loads(path.read_bytes())
