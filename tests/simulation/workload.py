"""The client workload of a run: proposals, membership changes (add a learner,
promote it, remove a member), leadership transfers, ReadIndex reads, and log
compaction (retention) on any node.

It acts only through the cluster's public surface (the cores' propose/... methods
and MemoryStorage.compact) and reports what it asked for to the Checker, which
decides what was acknowledged. Every choice comes from the run's seeded rng; errors
the core raises on purpose (RaftError: not leader, change in progress...) are the
ordinary answers a client gets and are counted, never hidden.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from logmesh_storage.log.entry import encode_records
from logmesh_storage.raft.errors import RaftError
from logmesh_storage.raft.node import RaftNode
from logmesh_storage.raft.types import ConfChange, ConfChangeType

from .checkers import Proposal
from .cluster import Cluster

VOTERS_MIN = 3  # removal keeps a 3-voter quorum so that the liveness phase can succeed
VOTERS_MAX = 5


@dataclass(frozen=True)
class WorkloadOptions:
    propose_probability: float = 0.3
    batch_max: int = 3
    conf_change_probability: float = 0.01
    transfer_probability: float = 0.005
    read_probability: float = 0.05
    compact_probability: float = 0.01
    # of a compaction: the node crashes part-way through it (engine mode only: a
    # memory disk's compaction is atomic)
    crash_during_compaction_probability: float = 0.0


@dataclass
class WorkloadStats:
    proposed: int = 0
    conf_changes: int = 0
    transfers: int = 0
    reads: int = 0
    compactions: int = 0
    refused: int = 0  # RaftError answers


class Workload:
    def __init__(
        self, cluster: Cluster, rng: random.Random, options: WorkloadOptions, tag: str
    ) -> None:
        self._cluster = cluster
        self._rng = rng
        self._options = options
        self._tag = tag  # makes payloads unique per run
        self._sequence = 0
        self.stats = WorkloadStats()

    def step(self) -> None:
        """One tick of client activity."""
        options = self._options
        leader = self._pick_leader()
        if leader is not None:
            if self._rng.random() < options.propose_probability:
                self._try(lambda: self.propose(leader))
            if self._rng.random() < options.conf_change_probability:
                self._try(lambda: self.change_membership(leader))
            if self._rng.random() < options.transfer_probability:
                self._try(lambda: self.transfer(leader))
            if self._rng.random() < options.read_probability:
                self._try(lambda: self.read(leader))
        if self._rng.random() < options.compact_probability:
            self.compact()

    def _try(self, action: object) -> None:
        assert callable(action)
        try:
            action()
        except RaftError:
            self.stats.refused += 1

    def _pick_leader(self) -> RaftNode | None:
        leaders = self._cluster.leaders()
        return self._rng.choice(leaders) if leaders else None

    def _next_token(self) -> bytes:
        self._sequence += 1
        return f"{self._tag}-{self._sequence}".encode()

    # actions (public: the hypothesis state machine calls them too)

    def propose(self, leader: RaftNode) -> None:
        payloads = [
            self._next_token() for _ in range(self._rng.randint(1, self._options.batch_max))
        ]
        term = leader.term
        timestamp_ms = self._cluster.now_tick * 10
        node = self._cluster.nodes[leader.node_id]
        if len(payloads) > 1 and self._rng.random() < 0.5:  # one RECORDS entry, as a batch
            index = leader.propose_records(payloads, timestamp_ms=timestamp_ms)
            self._cluster.checker.on_propose(
                Proposal(leader.node_id, node.life, term, index, encode_records(payloads))
            )
            self.stats.proposed += len(payloads)
            return
        first, last = leader.propose(payloads, timestamp_ms=timestamp_ms)
        assert last - first + 1 == len(payloads)
        for index, payload in zip(range(first, last + 1), payloads, strict=True):
            self._cluster.checker.on_propose(
                Proposal(leader.node_id, node.life, term, index, payload)
            )
        self.stats.proposed += len(payloads)

    def change_membership(self, leader: RaftNode) -> None:
        change = self._choose_conf_change(leader)
        if change is None:
            return
        if change.type is ConfChangeType.ADD_LEARNER:
            node = self._cluster.nodes[change.node_id]
            if node.raft is None:
                self._cluster.start(change.node_id)  # the new node must run to catch up
        leader.propose_conf_change(change, timestamp_ms=self._cluster.now_tick * 10)
        self.stats.conf_changes += 1

    def _choose_conf_change(self, leader: RaftNode) -> ConfChange | None:
        configuration = leader.configuration
        spares = sorted(
            node_id
            for node_id, node in self._cluster.nodes.items()
            if node_id not in self._cluster.joined
            and node_id not in configuration.members
            and not node.decommissioned
        )
        learners = sorted(configuration.learners)
        removable = sorted(configuration.learners) + (
            sorted(configuration.voters - {leader.node_id})
            if len(configuration.voters) > VOTERS_MIN
            else []
        )
        choices: list[ConfChange] = []
        if spares:
            choices.append(ConfChange(ConfChangeType.ADD_LEARNER, self._rng.choice(spares)))
        if learners and len(configuration.voters) < VOTERS_MAX:
            choices.append(ConfChange(ConfChangeType.PROMOTE, self._rng.choice(learners)))
        if removable:
            choices.append(ConfChange(ConfChangeType.REMOVE, self._rng.choice(removable)))
        return self._rng.choice(choices) if choices else None

    def transfer(self, leader: RaftNode) -> None:
        others = sorted(leader.configuration.voters - {leader.node_id})
        if others:
            leader.transfer_leadership(self._rng.choice(others))
            self.stats.transfers += 1

    def read(self, leader: RaftNode) -> None:
        context = self._next_token()
        leader.read_index(context)
        self._cluster.checker.on_read_issued(leader.node_id, context)
        self.stats.reads += 1

    def compact(self) -> None:
        """Retention on one node: drop a prefix of what it has applied and made durable."""
        candidates = [node for node in self._cluster.up_nodes()]
        if not candidates:
            return
        node = self._rng.choice(candidates)
        storage = node.disk.storage
        durable_commit = storage.initial_state()[0].commit_index
        high = min(node.applied_index, durable_commit, storage.last_index())
        low = storage.snapshot().index + 1
        if high < low:
            return
        index = self._rng.randint(low, high)
        self.stats.compactions += 1
        crash_probability = self._options.crash_during_compaction_probability
        if crash_probability and self._rng.random() < crash_probability:
            self._cluster.crash(node.node_id, compacting_to=index)
        else:
            storage.compact(index)
