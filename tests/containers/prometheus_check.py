"""Prometheus in the stack: it scrapes every lull container and has loaded the alert rules."""

from __future__ import annotations

import urllib.parse
from collections import Counter

import yaml

from tests.containers.http_get import NotYet, get_json, wait_for
from tests.containers.podman import ROOT
from tests.containers.stack import Stack

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Scrape jobs of deploy/prometheus/prometheus.yml and the targets each must find.
EXPECTED_TARGETS = {"lull-ingest": 1, "lull-processor": 2, "lull-sender": 2, "prometheus": 1}
# Discovery refreshes every 30 s and scrapes come every 15 s: a target found late is up
# within about a minute.
SCRAPE_TIMEOUT_S = 150


def query(stack: Stack, promql: str) -> list[dict[str, object]]:
    """An instant query's result vector."""
    url = stack.ports.url(stack.ports.prometheus, "/api/v1/query?query=")
    answer = get_json(url + urllib.parse.quote(promql))
    if answer.get("status") != "success":
        raise NotYet(f"{promql}: {answer}")
    result: list[dict[str, object]] = answer["data"]["result"]
    return result


def every_target_up(stack: Stack) -> str:
    """Wait until `up` is 1 for exactly the expected targets of every job; a summary."""

    def check() -> str:
        up = query(stack, "up")
        counts = Counter(str(sample["metric"]["job"]) for sample in up)  # type: ignore[index]
        down = [s["metric"] for s in up if s["value"][1] != "1"]  # type: ignore[index]
        if dict(counts) != EXPECTED_TARGETS or down:
            raise NotYet(f"targets {dict(counts)}, down {down}")
        return ", ".join(f"{job} x{n}" for job, n in sorted(counts.items()))

    return wait_for(check, "up == 1 on every target", SCRAPE_TIMEOUT_S)


def lull_metrics_scraped(stack: Stack, webhooks: int) -> None:
    """Wait until ingest's request counter, as scraped, counts the webhooks sent so far."""

    def check() -> None:
        result = query(stack, "sum(lull_ingest_requests_total)")
        counted = float(result[0]["value"][1]) if result else 0.0  # type: ignore[index]
        if counted < webhooks:
            raise NotYet(f"lull_ingest_requests_total {counted} < {webhooks}")

    wait_for(check, "ingest's requests in Prometheus", SCRAPE_TIMEOUT_S)


def rules_loaded(stack: Stack) -> list[str]:
    """Wait until Prometheus runs every rule of alerts.yml, each evaluated healthy; names."""
    expected = sorted(
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    )

    def check() -> list[str]:
        answer = get_json(stack.ports.url(stack.ports.prometheus, "/api/v1/rules"))
        loaded = {
            rule["name"]: rule["health"]
            for group in answer["data"]["groups"]
            for rule in group["rules"]
            if rule["type"] == "alerting"
        }
        assert sorted(loaded) == expected, (sorted(loaded), expected)
        # "unknown" until the first evaluation (every 15 s); "err" when a rule fails.
        pending = {name: health for name, health in loaded.items() if health == "unknown"}
        if pending:
            raise NotYet(f"not evaluated yet: {sorted(pending)}")
        failing = {name: health for name, health in loaded.items() if health != "ok"}
        assert not failing, failing
        return expected

    return wait_for(check, "every alert rule loaded and evaluated", SCRAPE_TIMEOUT_S)
