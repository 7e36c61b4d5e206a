"""Assemble and run one storage node: storage, Raft core, driver, one gRPC server, lifecycle.

One port carries `log.v1.Log`, `logmesh.v1.Raft`, `logmesh.v1.Admin`, `grpc.health.v1.Health`
and reflection, all behind mutual TLS. Health is SERVING only while a leader is known and this
node has applied everything it knows to be committed. On SIGTERM (or SIGINT): stop taking
writes, hand leadership over if leading, let in-flight writes finish, end streams, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
from collections.abc import Callable

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from logmesh import tls
from logmesh._gen.log.v1 import log_pb2, log_pb2_grpc
from logmesh._gen.logmesh.v1 import admin_pb2, admin_pb2_grpc, raft_pb2, raft_pb2_grpc
from logmesh.logging import log_ready

from ..log.config import LogConfig
from ..raft.config import RaftConfig
from ..raft.node import RaftNode
from .admin_servicer import AdminServicer, transfer_leadership
from .config import NodeConfig
from .driver import Driver
from .errors import ListenError
from .log_servicer import LogServicer
from .membership import join_cluster, promote_caught_up_learners
from .peers import PeerAddress, PeerTable, new_generation
from .raft_servicer import RaftServicer
from .raft_storage import LogRaftStorage
from .transport import Transport

log = logging.getLogger(__name__)

# How long shutdown waits for in-flight writes after leadership moved.
DRAIN_TIMEOUT_S = 5.0
SERVER_GRACE_S = 1.0
HEALTH_SERVICES = ("", "log.v1.Log")
RETENTION_INTERVAL_S = 1.0
GIL_SWITCH_INTERVAL_S = 0.0005
MAX_INFLIGHT_APPENDS = 1


class Node:
    """A running storage node. `start()` binds and serves; `run_until_signal()` lives on."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        # Certificates first: a node without them must not create a data directory.
        self.server_credentials = tls.server_credentials(config.tls_dir, config.node_id)
        self.storage = LogRaftStorage.open(
            config.data_dir,
            _log_config(config),
            bootstrap_voters=(config.node_id,) if config.bootstrap else (),
        )
        self.peers = PeerTable.load(config.data_dir / "raft")
        self.generation = new_generation()
        self.server = grpc.aio.server(options=tls.server_options())
        self.health = HealthServicer()
        self.port = 0
        self.advertise = ""
        self.driver: Driver | None = None
        self._background: list[asyncio.Task[None]] = []

    async def start(self) -> int:
        """Bind, serve, start Raft (and joining, if asked); returns the bound port."""
        config = self.config
        self._bind()
        driver = self.driver = self._make_driver()
        self._add_services(driver)
        await self.server.start()
        driver.start()
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self._watch_health(driver)))
        if config.join and driver.node_id not in driver.status().configuration.voters:
            credentials = tls.channel_credentials(config.tls_dir, config.node_id)
            joining = join_cluster(
                driver, config.join, self.advertise, self.generation, credentials
            )
            self._background.append(loop.create_task(joining))
        log_ready(log, self.port, address=self.advertise, node_id=config.node_id)
        return self.port

    def _bind(self) -> None:
        config = self.config
        try:
            self.port = self.server.add_secure_port(config.listen, self.server_credentials)
        except RuntimeError as e:  # grpc's only signal that bind() failed
            raise ListenError(
                f"cannot listen on {config.listen} ({e}): the port is taken or the address is "
                "not local; choose another --listen / LOGMESH_LISTEN (port 0 picks a free one)"
            ) from None
        host = config.listen.rpartition(":")[0]
        self.advertise = config.advertise or f"{_dialable(host)}:{self.port}"
        if self.peers.merge([PeerAddress(config.node_id, self.advertise, self.generation)]):
            self.peers.save(self.peers.snapshot())

    def _make_driver(self) -> Driver:
        config = self.config
        hard_state, _configuration = self.storage.initial_state()
        raft = RaftNode(
            config.node_id,
            self.storage,
            _raft_config(config),
            random.Random(config.seed),
            applied_index=hard_state.commit_index,  # the log is the state: committed = applied
        )
        transport = Transport(
            config.node_id, config.cluster_id, config.tls_dir, self.peers, self.storage.frames
        )
        driver = Driver(raft, self.storage, transport, self.peers, tick_s=config.tick_ms / 1000)
        driver.tick_hooks.append(lambda: promote_caught_up_learners(driver))
        if config.retention_bytes_max or config.retention_age_ms:
            every = _ticks(RETENTION_INTERVAL_S, config)
            driver.tick_hooks.append(_every(every, driver.apply_retention))
        return driver

    def _add_services(self, driver: Driver) -> None:
        config = self.config
        transfer_timeout_s = 2 * config.election_ticks * config.tick_ms / 1000
        log_pb2_grpc.add_LogServicer_to_server(
            LogServicer(driver, self.advertise, config.record_bytes_max), self.server
        )
        raft_pb2_grpc.add_RaftServicer_to_server(
            RaftServicer(driver, config.cluster_id), self.server
        )
        admin_pb2_grpc.add_AdminServicer_to_server(
            AdminServicer(driver, self.advertise, transfer_timeout_s), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [
            log_pb2.DESCRIPTOR.services_by_name["Log"].full_name,
            raft_pb2.DESCRIPTOR.services_by_name["Raft"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ]
        reflection.enable_server_reflection(names, self.server)

    async def _watch_health(self, driver: Driver) -> None:
        serving: bool | None = None
        while not driver.stopped:
            state_change = driver.state.next_change()
            now = driver.serving
            if now != serving:
                serving = now
                status = (
                    health_pb2.HealthCheckResponse.SERVING
                    if now
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                for service in HEALTH_SERVICES:
                    await self.health.set(service, status)
            await state_change.wait()

    async def run_until_signal(self) -> int:
        """Serve until SIGTERM/SIGINT (exit code 0) or a fatal storage error (exit code 1)."""
        assert self.driver is not None, "start() first"
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        failed = loop.create_task(self.driver.wait_failed())
        stopping = loop.create_task(stop.wait())
        await asyncio.wait([failed, stopping], return_when=asyncio.FIRST_COMPLETED)
        if failed.done():
            error = failed.exception()
            log.critical("the node stops: %s", error, extra={"event": "fatal"})
            await self.close(graceful=False)
            return 1
        failed.cancel()
        await self.shutdown()
        return 0

    async def shutdown(self) -> None:
        """The graceful stop of SIGTERM (module docstring)."""
        driver = self.driver
        assert driver is not None
        log.info("shutting down", extra={"event": "stopping"})
        driver.accepting_writes = False
        if driver.is_leader():
            timeout_s = 2 * self.config.election_ticks * self.config.tick_ms / 1000
            with contextlib.suppress(Exception):  # best effort: peers may be gone already
                await transfer_leadership(driver, None, timeout_s)
        await driver.wait_for(
            lambda: not driver.has_pending_writes(), driver.applied, DRAIN_TIMEOUT_S
        )
        await self.close(graceful=True)

    async def close(self, *, graceful: bool) -> None:
        await self.health.enter_graceful_shutdown()
        for task in self._background:
            task.cancel()
        if self.driver is not None:
            await self.driver.stop()  # ends ConsumeStreams with UNAVAILABLE
        await self.server.stop(SERVER_GRACE_S if graceful else 0)
        log.info("stopped", extra={"event": "stopped"})


def _ticks(interval_s: float, config: NodeConfig) -> int:
    return max(1, round(interval_s * 1000 / config.tick_ms))


def _every(ticks: int, action: Callable[[], None]) -> Callable[[], None]:
    """A tick hook that calls `action` once every `ticks` ticks."""
    count = 0

    def hook() -> None:
        nonlocal count
        count += 1
        if count % ticks == 0:
            action()

    return hook


def _dialable(host: str) -> str:
    """A listen host peers can dial: a wildcard address becomes loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "[::]", "::", "") else host


def _log_config(config: NodeConfig) -> LogConfig:
    return LogConfig(
        segment_bytes_max=config.segment_bytes_max,
        retention_bytes_max=config.retention_bytes_max or None,
        retention_age_ms_max=config.retention_age_ms or None,
    )


def _raft_config(config: NodeConfig) -> RaftConfig:
    return RaftConfig(
        election_timeout_ticks=config.election_ticks,
        heartbeat_interval_ticks=config.heartbeat_ticks,
        defer_commit_notices=True,  # the driver sends them (Driver._notify_commit)
        quiet_heartbeats=True,
        # One unacknowledged AppendEntries per follower: what the leader proposes meanwhile
        # goes out in the next one, when the answer comes back. On this 2-core machine CPU
        # per message is the limit, not the round trip: c16 ~830 -> ~1,130 writes/s, c64
        # ~1,060 -> ~1,570/s, sequential and batch unchanged (docs/raft.md).
        max_inflight_messages=MAX_INFLIGHT_APPENDS,
    )


async def serve(config: NodeConfig) -> int:
    # The writer thread gives the GIL up for each write and fsync, then must win it back
    # from the event loop: with the default 5 ms switch interval, a busy loop holds it that
    # long, and every fsync of a batch seemed to take 5 ms (measured; docs/raft.md).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    node = Node(config)
    await node.start()
    return await node.run_until_signal()
