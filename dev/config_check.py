"""`lull dev` checks every service's configuration once, before it starts any.

Each service would find the same problems itself, but only one would be seen (the stack
stops when the first dies) and shown twice (its own line, then again as its last lines); a
typo every service refuses would be one of several lines naming it. Checked here, each
problem is one line, printed once, and `lull dev` exits 2 like a service.

`lull dev` runs this module as a child, `python -m lull.dev.config_check SERVICE...`, in the
environment it gives the services: a python: handler is then imported from the same
sys.path as the sender's (the current directory first, then PYTHONPATH), and the bot's
module is never imported into the runner itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

from lull.common.env import ConfigError, problems_of
from lull.ingest.settings import IngestSettings
from lull.processor.settings import ProcessorSettings
from lull.sender.settings import SenderSettings

_LOADERS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "ingest": IngestSettings.from_env,
    "processor": ProcessorSettings.from_env,
    "sender": SenderSettings.from_env,
}


def configuration_problems(services: list[str], env: Mapping[str, str]) -> list[str]:
    """Every problem the chosen services would refuse to start with, each once, in order
    (the sender's includes a python: handler that cannot be imported)."""
    problems: dict[str, None] = {}
    for name in services:
        load = _LOADERS.get(name)
        if load is None:
            continue  # the fake Graph API reads only its port
        try:
            load(env)
        except ConfigError as exc:
            for problem in problems_of(exc):
                problems.setdefault(str(problem), None)
    return list(problems)


def main(services: list[str]) -> int:
    """Print each problem once to stderr; 2 when there is any, else 0."""
    problems = configuration_problems(services, os.environ)
    for problem in problems:
        print(f"lull dev: bad configuration: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
