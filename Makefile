# Every target bootstraps .venv itself, so a fresh machine needs only Python and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint fmt run bench clean up down chaos containers promtool

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

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
	rm -rf $(VENV) .lull .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
