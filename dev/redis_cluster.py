"""A local Redis Cluster of redis-server child processes: the cluster tests' store.

Formed the way redis-cli --cluster create does it, without redis-cli: each master takes
an equal share of the 16384 slots (CLUSTER ADDSLOTS), gets its own config epoch, meets the
first node, and we poll until every node reports the whole cluster as ok.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from lull.dev.embedded_redis import EmbeddedRedis, free_port

SLOTS = 16384
# Redis's cluster bus listens on port + 10000, which must be a valid, free port too.
BUS_PORT_OFFSET = 10000
MAX_CLIENT_PORT = 65535 - BUS_PORT_OFFSET
FORM_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.05
COMMAND_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 50
START_ATTEMPTS = 3


class ClusterUnavailable(RuntimeError):
    """A cluster could not be started or formed on this machine; the message says why."""


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_node_port(taken: set[int] | frozenset[int] = frozenset()) -> int:
    """A free loopback port whose cluster-bus port (port + 10000) is free and valid too."""
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        bus = port + BUS_PORT_OFFSET
        if port <= MAX_CLIENT_PORT and not {port, bus} & taken and _can_bind(bus):
            return port
    raise ClusterUnavailable(f"no free port pair (port, port + {BUS_PORT_OFFSET}) found")


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """The 16384 slots split into masters contiguous (first, last) ranges."""
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


@dataclass
class EmbeddedCluster:
    """masters redis-server processes in cluster mode on loopback, no replicas; stop() ends them."""

    data_dir: Path
    masters: int = 3
    nodes: list[EmbeddedRedis] = field(default_factory=list, init=False)

    @property
    def url(self) -> str:
        """redis:// URL of the first node: a cluster client discovers the others."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        """Client port of each node, in slot order."""
        return [node.port for node in self.nodes]

    def start(self) -> EmbeddedCluster:
        """Start every node and form the cluster; raises ClusterUnavailable (all stopped)."""
        try:
            for index in range(self.masters):
                self.nodes.append(self._start_node(index))
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node that was started."""
        for node in self.nodes:
            node.stop()

    def _start_node(self, index: int) -> EmbeddedRedis:
        taken = {p + offset for p in self.ports for offset in (0, BUS_PORT_OFFSET)}
        last_error = ""
        # A port checked free can be taken before redis-server binds it: try new ports.
        for _ in range(START_ATTEMPTS):
            port = cluster_node_port(taken)
            node = EmbeddedRedis(
                self.data_dir / f"node-{index}",
                appendonly=False,
                port=port,
                extra_args=(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", "5000",
                ),
            )  # fmt: skip
            try:
                return node.start()
            except RuntimeError as exc:
                last_error = str(exc)
        raise ClusterUnavailable(f"node {index} did not start: {last_error}")

    def _form(self) -> None:
        clients = [
            redis.Redis(
                host="127.0.0.1",
                port=port,
                socket_timeout=COMMAND_TIMEOUT_S,
                socket_connect_timeout=COMMAND_TIMEOUT_S,
            )
            for port in self.ports
        ]
        try:
            for epoch, (client, (first, last)) in enumerate(
                zip(clients, slot_ranges(self.masters), strict=True), start=1
            ):
                client.cluster("ADDSLOTS", *range(first, last + 1))
                # Distinct epochs up front, as redis-cli does: no collision to resolve.
                client.cluster("SET-CONFIG-EPOCH", epoch)
            for port in self.ports[1:]:
                clients[0].cluster("MEET", "127.0.0.1", port)
            self._wait_until_ok(clients)
        except redis.RedisError as exc:
            raise ClusterUnavailable(f"forming the cluster failed: {exc}") from exc
        finally:
            for client in clients:
                client.close()

    def _wait_until_ok(self, clients: list[redis.Redis]) -> None:
        deadline = time.monotonic() + FORM_TIMEOUT_S
        while True:
            states = [client.cluster("INFO") for client in clients]
            if all(self._complete(state) for state in states):
                return
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"cluster not ok within {FORM_TIMEOUT_S} s: {states[0]!r}")
            time.sleep(POLL_INTERVAL_S)

    def _complete(self, info: object) -> bool:
        """This node's view: state ok, every slot assigned and ok, every node known."""
        # redis-py parses CLUSTER INFO into a dict of strings.
        fields = info if isinstance(info, dict) else {}
        return (
            fields.get("cluster_state") == "ok"
            and str(fields.get("cluster_slots_ok")) == str(SLOTS)
            and str(fields.get("cluster_known_nodes")) == str(self.masters)
        )
