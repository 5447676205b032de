"""The compose stack under test: its ports, up, its containers and their health, down."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lull.dev.embedded_redis import free_port
from tests.containers.http_get import NotYet, get_json, wait_for
from tests.containers.podman import PROJECT, CommandFailed, Podman

# Every service of deploy/docker-compose.yml but Grafana (no Debian package; see
# compose.test.yml), with the number of containers each runs.
REPLICAS = {
    "redis": 1,
    "ingest": 1,
    "processor": 2,
    "sender": 2,
    "fake-graph": 1,
    "prometheus": 1,
}
APP_SECRET = "containers-test-app-secret"
VERIFY_TOKEN = "containers-test-verify-token"
UP_TIMEOUT_S = 300
DOWN_TIMEOUT_S = 300
READY_TIMEOUT_S = 120
EXEC_TIMEOUT_S = 60
PROJECT_LABEL = f"label=io.podman.compose.project={PROJECT}"


@dataclass(frozen=True)
class Ports:
    """The host ports the stack publishes on 127.0.0.1."""

    ingest: int
    fake_graph: int
    prometheus: int

    @classmethod
    def pick(cls) -> Ports:
        """Three free ports."""
        return cls(free_port(), free_port(), free_port())

    def compose_env(self) -> dict[str, str]:
        """What deploy/docker-compose.yml interpolates: the ports and the test's secrets."""
        return {
            "INGEST_PORT": str(self.ingest),
            "FAKE_GRAPH_PORT": str(self.fake_graph),
            "PROMETHEUS_PORT": str(self.prometheus),
            "LULL_APP_SECRET": APP_SECRET,
            "LULL_VERIFY_TOKEN": VERIFY_TOKEN,
            "LULL_HANDLER": "echo",
        }

    def url(self, port: int, path: str) -> str:
        """http://127.0.0.1:port/path."""
        return f"http://127.0.0.1:{port}{path}"


@dataclass(frozen=True)
class Container:
    """One container of the stack."""

    name: str
    service: str
    state: str
    id: str


@dataclass(frozen=True)
class Stack:
    """The running stack, driven through podman and its published ports."""

    podman: Podman
    ports: Ports

    def up(self) -> None:
        """`up -d` of every service under test (Grafana is not one)."""
        self.podman.compose(["up", "-d", *REPLICAS], UP_TIMEOUT_S)

    def down(self) -> None:
        """`down -v`: containers, network and volumes."""
        self.podman.compose(["down", "-v"], DOWN_TIMEOUT_S)

    def containers(self) -> list[Container]:
        """Every container of the project, running or not."""
        out = self.podman.run(["ps", "-a", "--filter", PROJECT_LABEL, "--format", "json"], 60)
        found = []
        for entry in json.loads(out or "[]"):
            labels = entry.get("Labels") or {}
            found.append(
                Container(
                    name=entry["Names"][0],
                    service=labels.get("com.docker.compose.service", ""),
                    state=entry["State"],
                    id=entry["Id"],
                )
            )
        return sorted(found, key=lambda c: c.name)

    def of(self, service: str) -> list[Container]:
        """The containers of one service."""
        return [c for c in self.containers() if c.service == service]

    def leftovers(self) -> list[str]:
        """Containers, volumes and networks of the project that still exist."""
        left = [f"container {c.name} ({c.state})" for c in self.containers()]
        volumes = self.podman.run(["volume", "ls", "--format", "{{.Name}}"], 60).split()
        left += [f"volume {v}" for v in volumes if v.startswith(f"{PROJECT}_")]
        networks = self.podman.run(["network", "ls", "--format", "{{.Name}}"], 60).split()
        left += [f"network {n}" for n in networks if n.startswith(f"{PROJECT}_")]
        return left

    def wait_ready(self) -> None:
        """Every service's container runs, ingest and the fake Graph API answer from the
        host, and every compose healthcheck passes."""
        wait_for(self._all_running, "every container running", READY_TIMEOUT_S)
        wait_for(
            lambda: get_json(self.ports.url(self.ports.ingest, "/readyz")),
            "ingest's /readyz answers 200 from the host",
            READY_TIMEOUT_S,
        )
        wait_for(
            lambda: get_json(self.ports.url(self.ports.fake_graph, "/_sent")),
            "the fake Graph API answers",
            READY_TIMEOUT_S,
        )
        for container in self.containers():
            wait_for(
                lambda c=container: self._healthy(c),  # type: ignore[misc]
                f"the healthcheck of {container.name}",
                READY_TIMEOUT_S,
            )

    def _all_running(self) -> None:
        counts = {service: 0 for service in REPLICAS}
        for container in self.containers():
            if container.state == "running":
                counts[container.service] = counts.get(container.service, 0) + 1
        if counts != REPLICAS:
            raise NotYet(f"running: {counts}")

    def _healthy(self, container: Container) -> None:
        # podman runs healthchecks on systemd timers, and there is no systemd here: run
        # each one by hand (it is the compose file's own test command).
        try:
            self.podman.run(["healthcheck", "run", container.name], EXEC_TIMEOUT_S)
        except CommandFailed as exc:
            if "has no defined healthcheck" in str(exc):
                return
            raise NotYet(str(exc).splitlines()[-1]) from exc

    def exec(self, container: str, command: list[str]) -> str:
        """A command inside a running container; its stdout."""
        return self.podman.run(["exec", container, *command], EXEC_TIMEOUT_S)

    def stats(self) -> dict[str, Any]:
        """`lull stats --json`, run inside the ingest container (it has the stack's settings)."""
        [ingest] = self.of("ingest")
        stats: dict[str, Any] = json.loads(self.exec(ingest.name, ["lull", "stats", "--json"]))
        return stats

    def inbound_added(self) -> int:
        """Entries ever added to the inbound stream (XINFO STREAM's entries-added): unlike
        XLEN it only grows, though lull trims what every group has acknowledged."""
        [redis] = self.of("redis")
        lines = self.exec(redis.name, ["redis-cli", "XINFO", "STREAM", "lull:in"]).split()
        return int(lines[lines.index("entries-added") + 1])

    def held_by(self, container: Container) -> int:
        """Inbound entries delivered to a processor container and not acknowledged (its
        consumers are named after its host name, the container id's first 12 digits)."""
        [redis] = self.of("redis")
        words = self.exec(
            redis.name, ["redis-cli", "XINFO", "CONSUMERS", "lull:in", "processor"]
        ).split()
        held = 0
        name = ""
        for key, value in zip(words[::2], words[1::2], strict=True):
            if key == "name":
                name = value
            elif key == "pending" and name.startswith(container.id[:12]):
                held += int(value)
        return held

    def wait_drained(self, timeout_s: float) -> str:
        """Wait until Redis holds no unread, unacknowledged or open work; say so."""

        def check() -> str:
            stats = self.stats()
            inbound, outbound = stats["inbound"], stats["outbound"]
            left = {
                "inbound lag": inbound["lag"],
                "inbound pending": inbound["pending"],
                "outbound lag": outbound["lag"],
                "outbound pending": outbound["pending"],
                "open windows": stats["windows"]["open"],
            }
            if any(left.values()):
                raise NotYet(str(left))
            assert stats["dead_letters"] == 0, f"dead letters: {stats['dead_letters']}"
            return "Redis drained: no lag, nothing pending, no open window, no dead letter"

        return wait_for(check, "Redis drained", timeout_s)

    def logs_tail(self, lines: int = 30) -> str:
        """The last lines of every container's log, for a failure report."""
        parts = []
        for container in self.containers():
            try:
                log = self.podman.run(
                    ["logs", "--tail", str(lines), container.name], 60, stderr_too=True
                )
            except CommandFailed as exc:
                log = str(exc)
            parts.append(f"--- {container.name} ({container.state})\n{log}")
        return "\n".join(parts)
