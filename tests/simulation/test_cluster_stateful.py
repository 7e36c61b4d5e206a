"""Hypothesis drives 3-5 Raft cores step by step: it chooses which packet to deliver,
drop or duplicate (so, any reordering), when each disk write completes, who ticks,
crashes, restarts, is partitioned away, and who proposes. After every step the
simulation's Checker verifies election safety, log matching, leader completeness,
state-machine safety, monotonic terms and commits (across crashes), and that nothing
is acknowledged or voted before it is durable."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from logmesh_storage.raft.config import RaftConfig
from logmesh_storage.raft.errors import RaftError
from logmesh_storage.raft.types import Role

from simulation.checkers import Checker, Proposal
from simulation.cluster import Cluster
from simulation.network import Network

_NODE = st.integers(min_value=0, max_value=4)
_PACKET = st.integers(min_value=0, max_value=1 << 16)


class RaftClusterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster: Cluster | None = None
        self.sequence = 0

    @initialize(
        voter_count=st.integers(min_value=3, max_value=5),
        max_entries_per_message=st.sampled_from([1, 512]),
        seed=st.integers(0, 1 << 32),
        eager_messages=st.booleans(),
    )
    def start_cluster(
        self, voter_count: int, max_entries_per_message: int, seed: int, eager_messages: bool
    ) -> None:
        rng = random.Random(seed)
        node_ids = [f"n{i}" for i in range(1, voter_count + 1)]
        # short timeouts so that a few dozen steps see elections, crashes and recoveries;
        # one entry per message lets a new leader replicate old entries before its NOOP
        config = RaftConfig(
            election_timeout_ticks=3,
            heartbeat_interval_ticks=1,
            max_entries_per_message=max_entries_per_message,
        )
        # eager_messages: messages leave while writes are pending, as the storage node's
        # driver ships them (a Ready's write then races the commits of its own entries)
        self.cluster = Cluster(
            node_ids, node_ids, config, rng, Network(rng), Checker(), eager_messages=eager_messages
        )
        for node_id in node_ids:
            self.cluster.start(node_id)

    # helpers

    def _cluster(self) -> Cluster:
        assert self.cluster is not None
        return self.cluster

    def _node_id(self, number: int) -> str:
        ids = sorted(self._cluster().nodes)
        return ids[number % len(ids)]

    def _settle(self) -> None:
        """Hand out every Ready; writes stay pending until a `persist` step."""
        cluster = self._cluster()
        for node in cluster.up_nodes():
            cluster.pump(node.node_id, disk_delay_ticks=1)
        cluster.observe()

    # rules

    @rule(number=_NODE, times=st.integers(min_value=1, max_value=6))
    def tick(self, number: int, times: int) -> None:
        cluster = self._cluster()
        node_id = self._node_id(number)
        for _ in range(times):
            if cluster.nodes[node_id].raft is not None:
                cluster.tick(node_id)
                self._settle()

    @rule(position=_PACKET)
    def deliver(self, position: int) -> None:
        message = self._cluster().network.take(position)
        if message is not None:
            self._cluster().deliver(message)
        self._settle()

    @rule()
    def deliver_all(self) -> None:
        network = self._cluster().network
        for _ in range(len(network.in_flight)):
            self.deliver(0)

    @rule(rounds=st.integers(min_value=1, max_value=12), propose_every=st.integers(1, 4))
    def run_rounds(self, rounds: int, propose_every: int) -> None:
        """Fault-free synchronous rounds (tick everyone, deliver, persist, and now and
        then propose) between the adversarial steps, so elections and commits happen."""
        cluster = self._cluster()
        for round_number in range(rounds):
            for node in cluster.up_nodes():
                cluster.tick(node.node_id)
            if round_number % propose_every == 0 and cluster.leaders():
                self.propose(round_number)
            self._settle()
            self.deliver_all()
            self.persist_all()

    @rule(duplicate=st.booleans(), position=_PACKET)
    def lose_or_duplicate(self, duplicate: bool, position: int) -> None:
        network = self._cluster().network
        if duplicate:
            network.duplicate(position)
        else:
            network.drop(position)

    @rule(number=_NODE)
    def persist(self, number: int) -> None:
        cluster = self._cluster()
        node = cluster.nodes[self._node_id(number)]
        if node.raft is not None and node.disk.pending is not None:
            cluster.complete_write(node.node_id)
        self._settle()

    @rule()
    def persist_all(self) -> None:
        for number in range(len(self._cluster().nodes)):
            self.persist(number)

    @rule(number=_NODE)
    def crash_or_restart(self, number: int) -> None:
        cluster = self._cluster()
        node_id = self._node_id(number)
        if cluster.nodes[node_id].raft is not None:
            cluster.crash(node_id)
        else:
            cluster.start(node_id)
        self._settle()

    @rule(members=st.sets(_NODE, max_size=2))
    def partition_or_heal(self, members: set[int]) -> None:
        """An empty set heals; otherwise those nodes are cut off from the rest."""
        network = self._cluster().network
        if members:
            network.partition([{self._node_id(m) for m in members}])
        else:
            network.heal()

    @precondition(lambda self: self.cluster is not None and bool(self.cluster.leaders()))
    @rule(number=_NODE)
    def propose(self, number: int) -> None:
        cluster = self._cluster()
        leaders = cluster.leaders()
        leader = leaders[number % len(leaders)]
        self.sequence += 1
        payload = f"p{self.sequence}".encode()
        node = cluster.nodes[leader.node_id]
        term = leader.term
        try:
            index, _ = leader.propose([payload], timestamp_ms=self.sequence)
        except RaftError:
            return
        cluster.checker.on_propose(Proposal(leader.node_id, node.life, term, index, payload))
        self._settle()

    @invariant()
    def leaders_are_unique_per_term(self) -> None:
        # The Checker raises on the spot; this restates election safety plainly.
        if self.cluster is None:
            return
        terms = [core.term for core in self.cluster.leaders() if core.role is Role.LEADER]
        assert len(terms) == len(set(terms)), f"two leaders share a term: {terms}"


RaftClusterMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=100,
    derandomize=True,  # CI replays the same examples: a failure is reproducible
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_raft_cluster_keeps_safety_under_any_schedule = RaftClusterMachine.TestCase
