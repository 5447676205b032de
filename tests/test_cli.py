"""The `lull` command in a service image, which leaves the dev tooling (lull.dev) out."""

from __future__ import annotations

import sys

import pytest

from lull.common.cli import main


@pytest.fixture
def no_dev_tooling(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the production image: importing lull.dev fails."""
    for name in [m for m in sys.modules if m.startswith("lull.dev.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lull.dev", None)


@pytest.mark.usefixtures("no_dev_tooling")
def test_a_dev_command_says_it_is_not_installed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fake-graph"]) == 2
    assert "dev tooling, not installed here" in capsys.readouterr().err


@pytest.mark.usefixtures("no_dev_tooling")
def test_help_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert "sender" in out and "fake-graph" in out
