"""deploy/ and the Dockerfile agree with the code: they parse, and every command, variable,
metric and port they name exists. No Docker engine needed: the files are read, not run."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from lull.cli import _COMMANDS
from lull.common.variables import SERVICE_VARIABLES
from lull.ingest.settings import IngestSettings
from lull.processor.settings import ProcessorSettings
from lull.sender.settings import SenderSettings
from tests.deploy.deploy_files import (
    ALERTS,
    COMMAND_USE,
    COMPOSE,
    COMPOSE_CLUSTER,
    DASHBOARDS,
    DEPLOY,
    DOCKERFILE,
    K8S,
    METRIC_USE,
    ROOT,
    SCRAPE,
    SERVICES,
    SOURCE_DIRS,
    VARIABLE,
    alert_rules,
    code_metrics,
    code_variables,
    compose_services,
    dashboard_expressions,
    deploy_texts,
    dev_only_paths,
    documented_variables,
    k8s_containers,
    k8s_environment,
    k8s_objects,
    load,
    load_all,
    service_command,
    service_environment,
    yaml_files,
)

# tests/test_services.py holds every service to stopping within this after SIGTERM.
STOP_BOUND_S = 10


def load_settings(command: str, env: dict[str, str]) -> Any:
    """The settings a service builds from env (ConfigError when a value is bad)."""
    loaders = {
        "ingest": IngestSettings.from_env,
        "processor": ProcessorSettings.from_env,
        "sender": SenderSettings.from_env,
    }
    return loaders[command](env)


def ports_of(settings: Any) -> tuple[int, ...]:
    """The ports a service listens on; its metrics port (with /healthz, /readyz) last."""
    if isinstance(settings, IngestSettings):
        return (settings.port, settings.metrics_port)
    return (settings.metrics_port,)


def default_ports() -> dict[str, tuple[int, ...]]:
    """Each service's ports when no LULL_*_PORT is set."""
    required = {"LULL_VERIFY_TOKEN": "t", "LULL_APP_SECRET": "s", "LULL_HANDLER": "echo"}
    return {command: ports_of(load_settings(command, required)) for command in SERVICES}


def rel(path: Path) -> str:
    """A path relative to the repository, for messages and test ids."""
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", yaml_files(), ids=rel)
def test_every_yaml_file_parses(path: Path) -> None:
    documents = load_all(path)
    assert documents
    assert all(isinstance(d, dict) for d in documents if d is not None)


def test_dashboards_parse_and_query_something() -> None:
    paths = sorted(DASHBOARDS.glob("*.json"))
    assert paths
    for path in paths:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        assert dashboard["uid"] and dashboard["title"]
    assert len(dashboard_expressions()) >= 20


def test_every_variable_is_read_by_the_code() -> None:
    known = code_variables()
    assert {"LULL_REDIS_URL", "LULL_HANDLER", "LULL_SENDER_METRICS_PORT"} <= known
    unknown = {
        (rel(path), name)
        for path, text in deploy_texts()
        for name in VARIABLE.findall(text)
        if name not in known
    }
    assert not unknown, f"variables no code reads: {sorted(unknown)}"


def test_every_variable_is_documented() -> None:
    documented = documented_variables()
    used = {name for _, text in deploy_texts() for name in VARIABLE.findall(text)}
    missing = sorted(used - documented)
    assert not missing, f"missing from docs/configuration.md's table: {missing}"


def test_the_configuration_table_is_every_variable_the_code_reads() -> None:
    documented, read = documented_variables(), code_variables()
    assert not read - documented, f"add to docs/configuration.md: {sorted(read - documented)}"
    assert not documented - read, f"no code reads: {sorted(documented - read)}"


def test_the_readme_names_every_variable_a_service_reads() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(name for name in SERVICE_VARIABLES if f"`{name}`" not in readme)
    assert not missing, f"add to README.md's Configuration list: {missing}"


def test_every_command_exists() -> None:
    used: list[tuple[str, str]] = []
    for path in (COMPOSE, COMPOSE_CLUSTER):
        for name, service in compose_services(path).items():
            command = service_command(service)
            if command is not None:
                used.append((f"{rel(path)} {name}", command))
    for deployment, container in k8s_containers():
        assert container["image"] == "lull"
        assert "command" not in container, "the image's entrypoint is lull"
        used.append((deployment["metadata"]["name"], container["args"][0]))
    for path, text in deploy_texts():
        used.extend((rel(path), command) for command in COMMAND_USE.findall(text))
    unknown = [(where, command) for where, command in used if command not in _COMMANDS]
    assert not unknown, f"not commands of lull/cli.py: {unknown}"
    assert {command for _, command in used} >= set(SERVICES)


def test_dockerfile_runs_lull_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'lull = "lull.cli:main"' in pyproject
    assert re.search(r'^ENTRYPOINT \["lull"\]$', text, re.MULTILINE)
    # The base is a build argument whose default is the official slim Python image.
    assert re.search(r"^ARG BASE_IMAGE=python:3\.1[1-9]-slim$", text, re.MULTILINE)
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.MULTILINE)
    assert stages[0] == ("${BASE_IMAGE}", "build")
    # The last stage is what `docker build .` gives: the production image.
    assert stages[-1] == ("runtime", "production")
    assert ("runtime", "dev") in stages
    production = text.split("AS production", 1)[1]
    users = re.findall(r"^USER (\S+)$", production, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "/opt/lull-dev" not in production
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.MULTILINE)
    assert "[dev]" not in text
    exposed = {int(p) for p in re.findall(r"^EXPOSE (.+)$", text, re.MULTILINE)[0].split()}
    assert exposed == {port for ports in default_ports().values() for port in ports}


def test_dev_only_paths_exist_and_reach_the_build() -> None:
    # The Dockerfile fails on a listed path that is gone; say so here first, and cheaply.
    # (tests/test_architecture.py checks that no runtime module imports dev/.)
    dev_only = dev_only_paths()
    assert "dev" in dev_only
    missing = [path for path in dev_only if not (ROOT / path).exists()]
    assert not missing, f"deploy/image/dev-only.txt names paths that do not exist: {missing}"
    # The .dockerignore lets the list into the build context, and nothing else of deploy/.
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "deploy" in ignore and "!deploy/image/dev-only.txt" in ignore
    # Every package folder is copied into the build stage, the dev tools included.
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    for folder in ("lull", *SOURCE_DIRS, *dev_only):
        assert f"COPY {folder} ./{folder}\n" in dockerfile, folder


def test_every_metric_in_alerts_and_dashboards_is_exported() -> None:
    samples, families = code_metrics()
    expected = {
        "lull_stream_lag",
        "lull_ingest_requests_total",
        "lull_stream_consumers",
        "lull_sender_graph_seconds_bucket",
        "lull_processor_window_overdue_seconds",
    }
    assert expected <= samples
    expressions = [rule["expr"] for rule in alert_rules()] + dashboard_expressions()
    in_queries = {name for expr in expressions for name in METRIC_USE.findall(expr)}
    assert not in_queries - samples, f"queried, not exported: {sorted(in_queries - samples)}"
    # Prose (annotations, descriptions) may name a family ("a histogram") too.
    texts = [ALERTS.read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in DASHBOARDS.glob("*.json")]
    named = {name for text in texts for name in METRIC_USE.findall(text)}
    assert not named - samples - families, f"unknown metrics: {sorted(named - samples - families)}"


def test_alert_rules_cover_the_issue() -> None:
    rules = alert_rules()
    for rule in rules:
        assert rule["alert"].startswith("Lull")
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", "0s")))
        expr = rule["expr"]
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), rule["alert"]
    by_metric = {name: rule for rule in rules for name in METRIC_USE.findall(rule["expr"])}
    # Inbound lag, overdue windows, dead letters, sender errors, groups without consumers.
    for metric in (
        "lull_stream_lag",
        "lull_processor_window_overdue_seconds",
        "lull_consumer_dead_letters_total",
        "lull_sender_deliveries_total",
        "lull_stream_consumers",
    ):
        assert metric in by_metric, metric
    overdue = by_metric["lull_processor_window_overdue_seconds"]
    assert "> 10" in overdue["expr"] and "max_wait" in overdue["annotations"]["description"]


def test_window_closed_is_alerted_on_and_on_the_dashboard() -> None:
    # A batch finished window_closed left users unanswered without an error or a dead
    # letter: only an alert and a panel of their own make it seen.
    outcome = 'outcome="window_closed"'
    [rule] = [rule for rule in alert_rules() if outcome in rule["expr"]]
    assert rule["alert"] == "LullRepliesOutsideWindow"
    assert "lull conversation" in rule["annotations"]["description"]
    assert any(outcome in expr for expr in dashboard_expressions())


def test_dashboard_panels_do_not_overlap() -> None:
    for path in sorted(DASHBOARDS.glob("*.json")):
        cells: dict[tuple[int, int], str] = {}
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            grid = panel["gridPos"]
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                    cells[(x, y)] = panel["title"]


def test_k8s_ports_probes_and_scrape_annotations_match_the_settings() -> None:
    defaults = default_ports()
    seen = set()
    for deployment, container in k8s_containers():
        command = container["args"][0]
        seen.add(command)
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert tuple(named.values()) == defaults[command]
        assert ports_of(load_settings(command, k8s_environment(container))) == defaults[command]
        for probe in ("readinessProbe", "livenessProbe"):
            http = container[probe]["httpGet"]
            assert http["path"] in ("/healthz", "/readyz")
            assert named.get(http["port"], http["port"]) in defaults[command]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(defaults[command][-1])
        assert named["metrics"] == defaults[command][-1]
    assert seen == set(SERVICES)


def test_k8s_references_exist() -> None:
    kustomization = load(K8S / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    config_maps = {d["metadata"]["name"] for d in k8s_objects("ConfigMap")}
    secrets = {d["metadata"]["name"] for d in k8s_objects("Secret")}
    deployments = k8s_objects("Deployment")
    for deployment in deployments:
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        for container in spec["template"]["spec"]["containers"]:
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                else:
                    assert source["secretRef"]["name"] in secrets
    [service] = k8s_objects("Service")
    selected = [
        d
        for d in deployments
        if service["spec"]["selector"].items()
        <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert [d["spec"]["template"]["spec"]["containers"][0]["args"] for d in selected] == [
        ["ingest"]
    ]
    port_names = {
        p["name"] for p in selected[0]["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_k8s_settings_are_valid_and_secrets_stay_in_secrets() -> None:
    for _, container in k8s_containers():
        load_settings(container["args"][0], k8s_environment(container))
    secret_names = {
        "LULL_APP_SECRET",
        "LULL_VERIFY_TOKEN",
        "LULL_ACCESS_TOKENS",
        "LULL_HANDLER_SECRET",
        "LULL_REDIS_URL",
    }
    for config_map in k8s_objects("ConfigMap"):
        assert not secret_names & set(config_map["data"])
    # The API server takes only strings there: an unquoted 1 or true is rejected.
    values = [v for d in k8s_objects("ConfigMap") for v in d["data"].values()]
    values += [v for d in k8s_objects("Secret") for v in d["stringData"].values()]
    assert all(isinstance(value, str) for value in values)


def test_stop_grace_is_above_each_services_bound() -> None:
    sender = SenderSettings.from_env({"LULL_HANDLER": "echo"})
    # A sender finishes the batch in hand: the bot's timeout, then a Graph send.
    in_hand_s = (sender.handler_timeout_ms + sender.graph_timeout_ms) / 1000
    bound_s = {"ingest": STOP_BOUND_S, "processor": STOP_BOUND_S, "sender": in_hand_s}
    for deployment, container in k8s_containers():
        grace_s = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
        pre_stop_s = int(pre_stop["command"][-1]) if pre_stop else 0
        assert grace_s > bound_s[container["args"][0]] + pre_stop_s
    for service in compose_services().values():
        command = service_command(service)
        if command in bound_s:
            grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
            assert grace and int(grace.group(1)) > bound_s[command]


def test_compose_services_health_and_settings() -> None:
    defaults = default_ports()
    services = compose_services()
    override = compose_services(COMPOSE_CLUSTER)
    commands = {}
    for name, service in services.items():
        command = service_command(service)
        if command not in SERVICES:
            continue
        commands[name] = command
        for env in (service_environment(service), service_environment(service, override[name])):
            assert ports_of(load_settings(command, env)) == defaults[command]
        assert re.search(
            rf"127\.0\.0\.1:{defaults[command][-1]}/readyz|"
            rf"127\.0\.0\.1:{defaults[command][0]}/readyz",
            " ".join(service["healthcheck"]["test"]),
        )
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert sorted(commands.values()) == sorted(SERVICES)
    assert services["processor"]["deploy"]["replicas"] == 2
    assert services["sender"]["deploy"]["replicas"] == 2
    assert override["processor"]["environment"]["LULL_REDIS_CLUSTER"] == "1"
    assert int(override["processor"]["environment"]["LULL_SHARDS"]) > 1


def test_compose_redis_keeps_an_append_only_file() -> None:
    redis = compose_services()["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert "redis-cli" in redis["healthcheck"]["test"]
    for node in ("redis", "redis-2", "redis-3"):
        cluster_command = " ".join(compose_services(COMPOSE_CLUSTER)[node]["command"])
        assert "--appendonly yes" in cluster_command and "--cluster-enabled yes" in cluster_command


def test_compose_references_exist() -> None:
    services = compose_services()
    merged = {**services, **compose_services(COMPOSE_CLUSTER)}
    for path in (COMPOSE, COMPOSE_CLUSTER):
        for name, service in compose_services(path).items():
            for dependency in service.get("depends_on", []):
                assert dependency in merged, (name, dependency)
            for volume in service.get("volumes", []):
                source = str(volume).split(":")[0]
                if source.startswith("."):
                    assert (DEPLOY / source).exists(), (name, source)
            build = service.get("build")
            if build:
                assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    prometheus = services["prometheus"]
    mounted = {str(v).split(":")[1] for v in prometheus["volumes"]}
    config = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = PurePosixPath(config.split("=")[1])
    assert str(config_path) in mounted
    # Prometheus resolves relative rule files against the config file's directory.
    rule_files = {str(config_path.parent / rule) for rule in load(SCRAPE)["rule_files"]}
    assert rule_files <= mounted
    for rule in load(SCRAPE)["rule_files"]:
        assert (SCRAPE.parent / rule).is_file(), rule


def test_compose_test_override_only_swaps_images() -> None:
    # `make containers` runs deploy/docker-compose.yml with this override: it must test the
    # stack operators start, not a copy of it.
    override = compose_services(ROOT / "tests" / "containers" / "compose.test.yml")
    services = compose_services()
    assert set(override) <= set(services)
    assert set(services) - set(override) == {"grafana"}
    for name, service in override.items():
        assert set(service) == {"image"}, name
        assert service["image"].startswith("localhost/lull-test"), name


def test_prometheus_scrapes_each_metrics_port() -> None:
    defaults = default_ports()
    scraped = {
        sd["names"][0]: sd["port"]
        for job in load(SCRAPE)["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
    }
    assert scraped == {command: ports[-1] for command, ports in defaults.items()}


def test_sender_tokens_file_is_mounted_and_fake() -> None:
    sender = compose_services()["sender"]
    tokens = service_environment(sender)["LULL_ACCESS_TOKENS"]
    assert tokens.startswith("@")
    content = json.loads(Path(tokens[1:]).read_text(encoding="utf-8"))
    assert all("dev-only" in token for token in content.values())


def test_grafana_provisions_the_dashboard_from_prometheus() -> None:
    grafana = compose_services()["grafana"]
    mounts = dict(str(v).split(":")[:2] for v in grafana["volumes"] if str(v).startswith("."))
    provisioning = DEPLOY / next(s for s, t in mounts.items() if t == "/etc/grafana/provisioning")
    [provider] = load(provisioning / "dashboards" / "lull.yml")["providers"]
    assert mounts[f"./{DASHBOARDS.relative_to(DEPLOY)}"] == provider["options"]["path"]
    [source] = load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["url"] == "http://prometheus:9090"
    for path in DASHBOARDS.glob("*.json"):
        variables = json.loads(path.read_text(encoding="utf-8"))["templating"]["list"]
        assert {v["current"]["value"] for v in variables if v["type"] == "datasource"} == {
            source["uid"]
        }
