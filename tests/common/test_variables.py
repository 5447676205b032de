"""The list of known LULL_* variables: complete, used, and what a typo in a name gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lull.common.env import ConfigError, ConfigErrors, problems_of
from lull.common.settings import CommonSettings
from lull.common.variables import (
    KNOWN_VARIABLES,
    SERVICE_VARIABLES,
    TOOLING_VARIABLES,
    closest_variable,
)
from lull.ingest.settings import IngestSettings
from lull.processor.settings import ProcessorSettings
from lull.sender.settings import SenderSettings

ROOT = Path(__file__).resolve().parents[2]
# The code a service or a tool runs (lull/ holds only symlinks to these).
CODE_DIRS = ("common", "ingest", "processor", "sender", "ops", "dev", "tests")
NAME_LITERAL = re.compile(r"""["'](LULL_[A-Z0-9_]+)["']""")
NAME_TOKEN = re.compile(r"\bLULL_[A-Z0-9_]+\b")
# Files that set variables for services: a stale name there now stops the service.
CONFIG_GLOBS = ("deploy/**/*.yaml", "deploy/**/*.yml", "Makefile", "Dockerfile", "deploy/**/*.env")
THIS_FILE = Path(__file__).resolve()

SERVICES = {
    "ingest": IngestSettings.from_env,
    "processor": ProcessorSettings.from_env,
    "sender": SenderSettings.from_env,
}
GOOD = {"LULL_APP_SECRET": "s", "LULL_VERIFY_TOKEN": "t", "LULL_HANDLER": "echo"}


def _python_files(*, tests: bool) -> list[Path]:
    files = []
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            is_test = path.name.startswith("test_") or path.name == "conftest.py"
            if path.resolve() != THIS_FILE and (tests or not is_test):
                files.append(path)
    return files


def _literals(files: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in files:
        for name in NAME_LITERAL.findall(path.read_text()):
            found.setdefault(name, path)
    return found


def test_every_name_the_code_uses_is_known() -> None:
    # Code reads settings through Env("LULL_..."), os.environ.get("LULL_...") or a constant
    # holding the name: every such string must be in common/variables.py, or a service
    # would refuse the variable it reads. Tests count too: an env they build with a name
    # no one reads would now stop the service they start.
    unknown = {
        name: str(path.relative_to(ROOT))
        for name, path in _literals(_python_files(tests=True)).items()
        if name not in KNOWN_VARIABLES
    }
    assert unknown == {}, "add these names to common/variables.py (one line each)"


def test_every_known_name_is_read_somewhere() -> None:
    used = set(_literals(_python_files(tests=False)))
    assert sorted(SERVICE_VARIABLES - used) == [], "listed in common/variables.py, read nowhere"
    assert sorted(TOOLING_VARIABLES - used) == [], "listed in common/variables.py, read nowhere"


def test_deployment_files_set_only_known_names() -> None:
    found = {
        name: str(path.relative_to(ROOT))
        for pattern in CONFIG_GLOBS
        for path in ROOT.glob(pattern)
        for name in NAME_TOKEN.findall(path.read_text())
    }
    assert found, "no deployment file was read: the globs are wrong"
    assert {n: p for n, p in found.items() if n not in KNOWN_VARIABLES} == {}


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("LULL_WINDOW_SM", "LULL_WINDOW_MS"),
        ("LULL_HANDELR", "LULL_HANDLER"),
        ("LULL_REDIS_ULR", "LULL_REDIS_URL"),
        ("lull_window_ms", "LULL_WINDOW_MS"),
        ("Lull_Handler", "LULL_HANDLER"),
        ("LULL_ACCES_TOKENS", "LULL_ACCESS_TOKENS"),
        ("LULL_CHAOS_SECOND", "LULL_CHAOS_SECONDS"),
        ("LULL_COMPLETELY_DIFFERENT_THING", None),
    ],
)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_unknown_name_stops_every_service_naming_it(
    service: str, typo: str, meant: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        SERVICES[service]({**GOOD, typo: "100"})
    [problem] = problems_of(caught.value)
    assert problem.name == typo
    message = str(problem)
    assert message.startswith(f"{typo}: no lull service reads this variable")
    assert "\n" not in message
    if meant is None:
        assert "did you mean" not in message
    else:
        assert closest_variable(typo) == meant
        assert f"did you mean {meant}?" in message
    if typo.upper() == meant:
        assert "(names are upper case)" in message


def test_the_value_of_an_unknown_name_is_never_shown() -> None:
    # A misspelt LULL_APP_SECRET holds a secret.
    with pytest.raises(ConfigError) as caught:
        IngestSettings.from_env({**GOOD, "LULL_APP_SECERT": "hunter2"})
    assert "hunter2" not in str(caught.value)
    assert "did you mean LULL_APP_SECRET?" in str(caught.value)


def test_names_of_other_prefixes_are_not_ours() -> None:
    env = {**GOOD, "LULLABY": "x", "MY_LULL_WINDOW": "x", "PATH": "/bin"}
    assert IngestSettings.from_env(env).port == 8080


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_accepts_every_known_name(service: str) -> None:
    # One env file serves all services: the sender's variables must not stop ingest, nor
    # the benchmark's or the chaos run's variables any service.
    env = {**dict.fromkeys(KNOWN_VARIABLES, " "), **GOOD}
    SERVICES[service](env)  # blank values count as unset


def test_every_problem_of_a_service_is_reported_at_once() -> None:
    env = {
        "LULL_HANDELR": "echo",
        "LULL_SHARDS": "zero",
        "LULL_LOG_FORMAT": "xml",
        "LULL_RATE_GLOBAL": "fast",
        "LULL_REDIS_URL": "http://:hunter2@redis:6379/0",
        "LULL_SENDER_METRICS_PORT": "70000",
    }
    with pytest.raises(ConfigErrors) as caught:
        SenderSettings.from_env(env)
    names = [problem.name for problem in caught.value.problems]
    # The unknown name first: it often explains the rest (here, LULL_HANDLER unset).
    assert names == [
        "LULL_HANDELR",
        "LULL_REDIS_URL",
        "LULL_SHARDS",
        "LULL_LOG_FORMAT",
        "LULL_HANDLER",
        "LULL_RATE_GLOBAL",
        "LULL_SENDER_METRICS_PORT",
    ]
    assert str(caught.value).count("\n") == len(names) - 1  # one line per problem
    assert "hunter2" not in str(caught.value)


def test_a_cross_check_is_not_reported_against_a_default() -> None:
    # LULL_WINDOW_MS is bad; comparing LULL_MAX_WAIT_MS with its default would add a
    # second, misleading problem.
    with pytest.raises(ConfigError) as caught:
        ProcessorSettings.from_env({"LULL_WINDOW_MS": "soon", "LULL_MAX_WAIT_MS": "1000"})
    assert [p.name for p in problems_of(caught.value)] == ["LULL_WINDOW_MS"]
    with pytest.raises(ConfigError, match="LULL_MAX_WAIT_MS='1000': >= LULL_WINDOW_MS"):
        ProcessorSettings.from_env({"LULL_WINDOW_MS": "2000", "LULL_MAX_WAIT_MS": "1000"})


def test_common_settings_alone_check_names_too() -> None:
    # lull stats and lull dead read only the common settings, from the same env file.
    with pytest.raises(ConfigError, match="did you mean LULL_NAMESPACE"):
        CommonSettings.from_env({"LULL_NAMESPAEC": "x"})
