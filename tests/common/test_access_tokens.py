"""LULL_ACCESS_TOKENS: inline JSON or @file; a refusal never echoes a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from lull.common.access_tokens import load_tokens


def test_inline_tokens() -> None:
    assert load_tokens(' {"page-1": "tok1", "pn-2": "tok2"} ') == {"page-1": "tok1", "pn-2": "tok2"}
    assert load_tokens("{}") == {}


def test_tokens_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"page-1": "tok1"}', encoding="utf-8")
    assert load_tokens(f"@{path}") == {"page-1": "tok1"}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ('{"page-1": "SECRETTOKEN"', "not valid JSON"),
        ("SECRETTOKEN", "not valid JSON"),
        ('["SECRETTOKEN"]', "a JSON list"),
        ('{"page-1": 12345}', "token for account 'page-1' must be"),
        ('{"page-1": "SECRET TOKEN"}', "without spaces"),
        ('{"page-1": ""}', "non-empty string"),
        ('{"": "SECRETTOKEN"}', "account id is empty"),
        ("@/nonexistent/lull-tokens.json", "cannot read token file"),
    ],
)
def test_bad_tokens_are_refused_without_echoing_them(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        load_tokens(value)
    assert "SECRET" not in str(caught.value)
