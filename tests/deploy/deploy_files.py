"""Reading deploy/ and the code it must agree with: files, compose services, manifests."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import yaml

from lull.common.variables import TOOLING_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_CLUSTER = DEPLOY / "docker-compose.cluster.yml"
K8S = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SCRAPE = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
DEV_ONLY = DEPLOY / "image" / "dev-only.txt"
SOURCE_DIRS = ("common", "ingest", "processor", "sender", "ops")
SERVICES = ("ingest", "processor", "sender")

VARIABLE = re.compile(r"LULL_[A-Z0-9_]*[A-Z0-9]")
QUOTED_VARIABLE = re.compile(r"""["'](LULL_[A-Z0-9_]*[A-Z0-9])["']""")
CONFIG_ROW = re.compile(r"^\| `(LULL_[A-Z0-9_]+)` \|", re.MULTILINE)
METRIC_DEFINITION = re.compile(r"""\b(Counter|Gauge|Histogram|Summary)\(\s*["'](lull_\w+)["']""")
METRIC_USE = re.compile(r"\blull_[a-z0-9_]+")
# `lull <command>` as the docs and comments show commands (in backticks).
COMMAND_USE = re.compile(r"`lull ([a-z][a-z-]*)")
INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_]+)(?::-([^}]*))?\}")


def yaml_files() -> list[Path]:
    """Every YAML file under deploy/."""
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


def load_all(path: Path) -> list[Any]:
    """Every document of a YAML file."""
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def load(path: Path) -> dict[str, Any]:
    """A one-document YAML file holding a mapping."""
    [document] = load_all(path)
    assert isinstance(document, dict), path
    return cast(dict[str, Any], document)


def deploy_texts() -> Iterator[tuple[Path, str]]:
    """(path, text) of every file under deploy/ and of the Dockerfile."""
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            yield path, path.read_text(encoding="utf-8")
    yield DOCKERFILE, DOCKERFILE.read_text(encoding="utf-8")


def source_files() -> Iterator[Path]:
    """The Python files of the packages that read settings and define metrics."""
    for directory in SOURCE_DIRS:
        yield from sorted((ROOT / directory).rglob("*.py"))


def dev_only_paths() -> list[str]:
    """deploy/image/dev-only.txt: source paths the production image leaves out."""
    lines = DEV_ONLY.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def code_variables() -> set[str]:
    """Every LULL_* name the code spells out as a string literal, but the test, bench and dev
    tooling's own (common/variables.py lists them so that services accept them)."""
    found: set[str] = set()
    for path in source_files():
        found.update(QUOTED_VARIABLE.findall(path.read_text(encoding="utf-8")))
    return found - TOOLING_VARIABLES


def documented_variables() -> set[str]:
    """The variables of the configuration table (docs/configuration.md)."""
    return set(CONFIG_ROW.findall((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")))


def code_metrics() -> tuple[set[str], set[str]]:
    """(names of the exported samples, metric family names) of every metric the code defines.

    prometheus_client adds _total to counters, _bucket/_sum/_count to histograms and
    _sum/_count to summaries (and strips a _total written in the definition).
    """
    samples: set[str] = set()
    families: set[str] = set()
    for path in source_files():
        for kind, defined in METRIC_DEFINITION.findall(path.read_text(encoding="utf-8")):
            name = defined.removesuffix("_total") if kind == "Counter" else defined
            if kind == "Counter":
                samples.add(f"{name}_total")
            elif kind == "Histogram":
                samples.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
            elif kind == "Summary":
                samples.update((name, f"{name}_sum", f"{name}_count"))
            else:
                samples.add(name)
            families.add(name)
    return samples, families


def interpolate(value: str) -> str:
    """A compose value with ${VAR:-default} as compose sees it when VAR is unset."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value).replace("$$", "$")


def compose_services(path: Path = COMPOSE) -> dict[str, dict[str, Any]]:
    """The services of a compose file (YAML merge keys resolved)."""
    return cast(dict[str, dict[str, Any]], load(path)["services"])


def service_command(service: dict[str, Any]) -> str | None:
    """The lull command a compose service of the lull image runs, None for other images."""
    image = str(service.get("image", ""))
    if "build" not in service and not image.startswith("lull"):
        return None
    command = service.get("command")
    assert isinstance(command, list) and command, f"a lull service needs a command: {service}"
    return str(command[0])


def service_environment(
    service: dict[str, Any], override: dict[str, Any] | None = None
) -> dict[str, str]:
    """A compose service's environment as its process sees it, with the override's merged in."""
    merged = {**service.get("environment", {}), **(override or {}).get("environment", {})}
    env = {name: interpolate(str(value)) for name, value in merged.items()}
    # A @file value names a path inside the container: map it back to the mounted file.
    for name, value in env.items():
        if value.startswith("@"):
            env[name] = "@" + str(mounted_file(service, value[1:]))
        elif name == "LULL_ACCOUNTS" and value:
            env[name] = str(mounted_file(service, value))
    return env


def mounted_file(service: dict[str, Any], target: str) -> Path:
    """The file under deploy/ a compose service mounts at target."""
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == target:
            return DEPLOY / source
    raise AssertionError(f"nothing is mounted at {target}")


def k8s_documents() -> list[dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s/, the kustomization excepted."""
    documents: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            documents.extend(d for d in load_all(path) if d is not None)
    return documents


def k8s_objects(kind: str) -> list[dict[str, Any]]:
    """The Kubernetes objects of one kind."""
    return [d for d in k8s_documents() if d.get("kind") == kind]


def k8s_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(deployment, container) of every container of every Deployment."""
    for deployment in k8s_objects("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield deployment, container


def k8s_environment(container: dict[str, Any]) -> dict[str, str]:
    """What a container's envFrom (ConfigMaps and Secrets) and env give its process."""
    config_maps = {d["metadata"]["name"]: d["data"] for d in k8s_objects("ConfigMap")}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in k8s_objects("Secret")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    accounts = env.get("LULL_ACCOUNTS")
    if accounts:
        # A path in the container: the key of the ConfigMap mounted there, written out.
        directory, _, key = str(accounts).rpartition("/")
        [config_map] = [d for d in k8s_objects("ConfigMap") if key in d["data"]]
        assert directory and config_map, accounts
        copy = Path(tempfile.mkdtemp(prefix="lull-k8s-accounts-")) / key
        copy.write_text(config_map["data"][key], encoding="utf-8")
        env["LULL_ACCOUNTS"] = str(copy)
    return {name: str(value) for name, value in env.items()}


def dashboard_expressions() -> list[str]:
    """The PromQL of every panel target of every dashboard."""
    expressions: list[str] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            expressions.extend(target["expr"] for target in panel.get("targets", []))
    return expressions


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of the alert rule file."""
    return [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]
