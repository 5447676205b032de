"""The `lull` command in a service image, which leaves the dev tooling (lull.dev) out."""

from __future__ import annotations

import importlib.metadata
import json
import sys

import pytest

from lull.cli import main


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


@pytest.mark.parametrize("name", ["batch", "reply"])
def test_schema_prints_the_contract_as_json_schema(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", name]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert printed["$id"] == f"urn:lull:contract:{name}:v1"


def test_schema_names_the_schemas_it_knows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["schema", "batches"])
    assert stopped.value.code == 2
    assert "choose from 'batch', 'reply'" in capsys.readouterr().err


def test_schema_needs_no_validator_library(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # jsonschema is a dev dependency only: a service image prints the schemas without it.
    for name in [m for m in sys.modules if m.startswith("lull.common.contract")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    assert main(["schema", "reply"]) == 0
    assert json.loads(capsys.readouterr().out)["title"].startswith("lull bot answer")


def test_version_is_the_installed_packages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"lull {importlib.metadata.version('lull')}"
