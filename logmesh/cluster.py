"""Start a cluster of N storage nodes as real processes, for integration tests and `logmesh dev`.

Node 0 bootstraps a one-voter cluster; the others join through it and are promoted by the
leader once caught up. Readiness and membership are awaited on the nodes' JSON log lines
(logmesh.testing), never by sleeping. Every node listens on port 0 the first time and keeps the
port it got for later restarts, so its peers find it again at the same address.

This module may not import the storage service: nodes are started by command line only.
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc

from logmesh import tls
from logmesh._gen.logmesh.v1 import admin_pb2, admin_pb2_grpc
from logmesh.certs import DEFAULT_CLIENTS, init_certs
from logmesh.errors import ServiceProcessError
from logmesh.testing import ServiceProcess

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STATUS_DEADLINE_S = 2.0
LEADER_POLL_S = 0.02


@dataclass
class StorageNode:
    """One node of the cluster: its id, data directory and process."""

    node_id: str
    data_dir: Path
    process: ServiceProcess
    port: int | None = None

    @property
    def address(self) -> str:
        assert self.port is not None, f"{self.node_id} has not started yet"
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.running


@dataclass
class StorageCluster:
    """N storage nodes under `base_dir` (data in base_dir/<id>, logs in base_dir/logs, certs in
    base_dir/certs unless `certs_dir` is given). Use as a context manager, or start()/stop()."""

    base_dir: Path
    size: int = 3
    certs_dir: Path | None = None
    tick_ms: int = 20
    election_ticks: int = 10
    ports: Sequence[int] | None = None  # fixed ports (logmesh dev); None: port 0
    extra_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    nodes: list[StorageNode] = field(default_factory=list)
    # "HH:MM:SS.mmm action node" for each fault injected, in the nodes' log time (UTC).
    journal: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.size >= 1, "a cluster has at least one node"
        assert self.ports is None or len(self.ports) == self.size, "one port per node"
        if self.certs_dir is None:
            self.certs_dir = self.base_dir / "certs"
        ids = [f"storage-{i}" for i in range(self.size)]
        init_certs(self.certs_dir, instances=ids, clients=DEFAULT_CLIENTS)
        for i, node_id in enumerate(ids):
            data_dir = self.base_dir / node_id
            process = ServiceProcess(
                self._args(node_id, data_dir, self._port(i)),
                self.env,
                node_id,
                self.base_dir / "logs",
            )
            self.nodes.append(StorageNode(node_id, data_dir, process))

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Self:
        """Start every node and wait until all are voters of one cluster."""
        # First-start flags; a node that already has state ignores them.
        first = self.nodes[0]
        if "--bootstrap" not in first.process.args:
            first.process.args.append("--bootstrap")
        self._start_node(first, timeout_s)
        for node in self.nodes[1:]:
            if "--join" not in node.process.args:
                node.process.args += ["--join", first.address]
            self._start_node(node, timeout_s)
        self.wait_for_voters([n.node_id for n in self.nodes], timeout_s)
        return self

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every running node (the last voters last); their exit codes by id."""
        return {node.node_id: node.process.stop() for node in reversed(self.nodes)}

    def kill(self, node: StorageNode) -> None:
        self._note("SIGKILL", node)
        node.process.kill()

    def pause(self, node: StorageNode) -> None:
        self._note("SIGSTOP", node)
        node.process.pause()

    def resume(self, node: StorageNode) -> None:
        self._note("SIGCONT", node)
        node.process.resume()

    def restart(self, node: StorageNode, timeout_s: float = START_TIMEOUT_S) -> None:
        """Stop (SIGTERM) if running, then start on the same port and wait until ready."""
        self._note("SIGTERM and start", node)
        node.process.stop()
        self._start_node(node, timeout_s)

    def start_again(self, node: StorageNode, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start a node that was stopped or killed, on its old port."""
        self._note("start", node)
        self._start_node(node, timeout_s)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_node(
        self, node_id: str, join: StorageNode, timeout_s: float = START_TIMEOUT_S
    ) -> StorageNode:
        """Start a new node that joins through `join` (as a learner; the leader promotes it
        once caught up). It becomes one of `nodes`, so stop() stops it with the others."""
        assert self.certs_dir is not None
        init_certs(self.certs_dir, instances=[node_id], clients=DEFAULT_CLIENTS)
        data_dir = self.base_dir / node_id
        args = [*self._args(node_id, data_dir, 0), "--join", join.address]
        node = StorageNode(
            node_id, data_dir, ServiceProcess(args, self.env, node_id, self.base_dir / "logs")
        )
        self.nodes.append(node)
        self._start_node(node, timeout_s)
        return node

    # ---- waiting -----------------------------------------------------------------------------

    def wait_for_voters(self, voters: Sequence[str], timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until every running node has logged a configuration with exactly `voters`."""
        wanted = sorted(voters)
        for node in self.nodes:
            if node.running:
                node.process.wait_for(
                    lambda e: e.get("event") == "membership" and e.get("voters") == wanted,
                    timeout_s,
                    f"membership with voters {wanted}",
                )

    def leader(self, timeout_s: float = START_TIMEOUT_S) -> StorageNode:
        """The node that leads now, as a majority of running nodes' Status sees it."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self._agreed_leader()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise ServiceProcessError(
                    f"no leader agreed on within {timeout_s:g} s; logs in {self.base_dir / 'logs'}"
                )
            time.sleep(LEADER_POLL_S)  # another process decides; nothing to be notified by

    def followers(self) -> list[StorageNode]:
        leader = self.leader()
        return [n for n in self.nodes if n is not leader and n.running]

    def node(self, node_id: str) -> StorageNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def status(self, node: StorageNode) -> admin_pb2.StatusResponse:
        with self.channel(node, "root") as channel:
            reply: admin_pb2.StatusResponse = admin_pb2_grpc.AdminStub(channel).Status(
                admin_pb2.StatusRequest(), timeout=STATUS_DEADLINE_S
            )
            return reply

    def channel(self, node: StorageNode, identity: str = "root") -> grpc.Channel:
        """A mutual-TLS channel to `node` presenting certificate `identity`."""
        assert self.certs_dir is not None
        return grpc.secure_channel(
            node.address,
            tls.channel_credentials(self.certs_dir, identity),
            options=tls.channel_options(),
        )

    # ---- internals ---------------------------------------------------------------------------

    def _agreed_leader(self) -> StorageNode | None:
        votes: dict[str, int] = {}
        running = [n for n in self.nodes if n.running and not n.process.paused]
        for node in running:
            try:
                status = self.status(node)
            except grpc.RpcError:
                continue
            if status.leader_id:
                votes[status.leader_id] = votes.get(status.leader_id, 0) + 1
        for leader_id, count in votes.items():
            node = self.node(leader_id)
            if count * 2 > len(running) and node in running:
                return node
        return None

    def _note(self, action: str, node: StorageNode) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S.%f")[:-3]
        self.journal.append(f"{now} {action} {node.node_id}")

    def _start_node(self, node: StorageNode, timeout_s: float) -> None:
        node.process.start()
        node.port = node.process.wait_ready(timeout_s)
        # Later starts keep this port: peers know the node by its address.
        args = node.process.args
        args[args.index("--listen") + 1] = f"{HOST}:{node.port}"

    def _port(self, i: int) -> int:
        return 0 if self.ports is None else self.ports[i]

    def _args(self, node_id: str, data_dir: Path, port: int) -> list[str]:
        assert self.certs_dir is not None
        return [
            sys.executable,
            "-m",
            "logmesh_storage",
            "--id",
            node_id,
            "--data-dir",
            str(data_dir),
            "--listen",
            f"{HOST}:{port}",
            "--tls-dir",
            str(self.certs_dir),
            "--tick-ms",
            str(self.tick_ms),
            "--election-ticks",
            str(self.election_ticks),
            *self.extra_args,
        ]
