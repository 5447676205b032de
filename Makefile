# Every target bootstraps .venv itself, so a fresh machine needs only Python and make.
# Every install comes from uv.lock (exact versions and hashes, checked): uv itself comes from
# the package index, hash-pinned in requirements-uv.txt, into .uv/; `make lock` upgrades.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VENV := .uv
UV := $(UV_VENV)/bin/uv
# Never a Python that uv downloads: the one the machine has (PYTHON) or nothing.
export UV_PYTHON_DOWNLOADS := never

.PHONY: test lint fmt run bench clean up down chaos containers promtool lock lock-test test-lowest

$(UV): requirements-uv.txt
	test -d $(UV_VENV) || $(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet --no-deps --require-hashes -r requirements-uv.txt
	touch $(UV)

$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) sync --quiet --locked --extra dev --python $(PYTHON)
	touch $(STAMP)

# Re-resolve every dependency to its newest release (the build backend's pins follow).
lock: $(UV)
	$(UV) lock --upgrade
	$(PYTHON) -m tests.lockfile.build_pins
	$(UV) lock

# What the newest releases break, without touching this checkout: `make lock` and `make test`
# in a scratch copy of it (tracked and untracked files, not ignored ones).
lock-test: $(UV)
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
		git ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t "$$scratch" && \
		$(MAKE) -C "$$scratch" lock test UV_VENV=$(CURDIR)/$(UV_VENV) UV=$(CURDIR)/$(UV)
	@echo "lock-test: the suite passed on the newest releases (make lock takes them here)"

# The other end of pyproject's ranges: every direct dependency at its lowest allowed version
# (uv's lowest-direct resolution), in a scratch copy; pytest only (the linters' own lowest
# releases would judge the style, not lull). One warning is not an error here: at these
# versions a garbage-collected AF_UNIX socket (an event loop's self-pipe by its look; cause
# not found yet) surfaces as an unraisable ResourceWarning in whichever test runs then. The
# newest releases, which make test runs with every warning an error, show none.
test-lowest: $(UV)
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
		git ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t "$$scratch" && \
		cd "$$scratch" && $(CURDIR)/$(UV) lock --quiet --resolution lowest-direct && \
		$(CURDIR)/$(UV) sync --quiet --frozen --extra dev --python $(PYTHON) && \
		$(CURDIR)/$(UV) pip list --python $(VENV)/bin/python --format freeze \
			| grep -E -i '^(redis|aiohttp|orjson|structlog|prometheus.client|uvloop|rich|hiredis|pytest|pytest.asyncio)==' && \
		$(VENV)/bin/pytest -q -p no:cacheprovider --ignore=tests/lockfile \
			-W 'ignore::pytest.PytestUnraisableExceptionWarning'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint promtool
	$(BIN)/pytest

# The alert rules' unit tests (tests/deploy/promtool/) and the Prometheus config, with
# promtool (Debian: apt-get install prometheus). Skipped, in one line, without it.
PROMTOOL := $(shell command -v promtool 2>/dev/null)
promtool:
ifdef PROMTOOL
	$(PROMTOOL) check config deploy/prometheus/prometheus.yml
	$(PROMTOOL) test rules tests/deploy/promtool/alerts_test.yml
else
	@echo "promtool not on PATH: alert rule tests and Prometheus config check skipped (Debian: apt-get install prometheus)"
endif

run: $(STAMP)
	$(BIN)/lull dev

bench: $(STAMP)
	$(BIN)/python -m tests.bench

# The long chaos run (tests/chaos): LULL_CHAOS_SECONDS of load and faults (default 600),
# then drain and check; LULL_CHAOS_SEED replays a run. `make test` runs a short one.
chaos: $(STAMP)
	seconds=$${LULL_CHAOS_SECONDS:-600}; LULL_CHAOS_SECONDS=$$seconds \
		$(BIN)/pytest -q -s -m chaos --timeout=$$((seconds + 300)) tests/chaos

# A voice note against a real recognizer, no fake (tests/sender/media/test_real_voice_note.py):
# espeak-ng speaks, opusenc encodes to OGG/Opus as WhatsApp sends them, pocketsphinx (the dev
# extra) recognizes behind dev/speech_server.py. Debian's espeak-ng and opus-tools are
# installed here when missing and run as root; `make test` skips the test without them.
.PHONY: speech
speech: $(STAMP)
	@if ! command -v espeak-ng >/dev/null || ! command -v opusenc >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				espeak-ng opus-tools >/dev/null; \
		else \
			echo "speech: needs espeak-ng and opus-tools (Debian: apt-get install espeak-ng opus-tools)"; \
			exit 1; \
		fi; \
	fi
	LULL_TEST_REQUIRE_SPEECH=1 $(BIN)/pytest -q tests/sender/media/test_real_voice_note.py

# The containerised stack (deploy/docker-compose.yml): Redis, ingest, 2 processors,
# 2 senders, a fake Graph API, Prometheus and Grafana. Needs Docker with Compose v2.
COMPOSE := docker compose -f deploy/docker-compose.yml

up:
	$(COMPOSE) up -d --build

# The same stack built and run here with podman, from nothing (tests/containers/run.py):
# installs podman & co. when root, builds the images on a Debian base made with debootstrap,
# sends bursts, kills a processor, checks Prometheus, takes it all down. Skips (one line)
# when not root or podman cannot run. CONTAINERS_ARGS=--fresh rebuilds the base image too.
containers: $(STAMP)
	$(BIN)/python -m tests.containers $(CONTAINERS_ARGS)

down:
	$(COMPOSE) down

clean:
	rm -rf $(VENV) $(UV_VENV) .lull .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
