"""The seeded simulator: owns time and faults, drives a Cluster and a Workload.

One `random.Random(seed)` is the only source of randomness, so a seed replays a run
exactly. A run is a safety phase (crashes, restarts, partitions, lossy, duplicating,
reordering network, slow disk, client workload) then a liveness phase (faults healed,
every non-removed node restarted, no more client work) that must elect a leader within
30 election timeouts and converge within a bound that grows with the log (catch-up is
throughput-bound); at the end no acknowledged proposal may be missing.
It may not read a wall clock or sleep. Any violation or core exception surfaces as
SimulationFailedError naming the seed and the replay command.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from logmesh_storage.log.config import LogConfig
from logmesh_storage.raft.types import NodeId

from .checkers import Checker
from .cluster import Cluster
from .disk import Disk
from .engine_disk import EngineDisk
from .engine_storage import EngineStats
from .errors import InvariantViolationError, SimulationFailedError
from .network import Network, NetworkOptions
from .options import SAFETY_TICKS_DEFAULT, SimOptions, StorageMode, options_for_seed
from .workload import Workload


@dataclass
class SimResult:
    seed: int
    ticks: int = 0
    liveness_ticks: int = 0
    crashes: int = 0
    partitions: int = 0
    pauses: int = 0
    terms: int = 0
    acknowledged: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.stats.items()))
        return (
            f"seed {self.seed}: ok ticks={self.ticks} (liveness {self.liveness_ticks}) "
            f"terms={self.terms} crashes={self.crashes} partitions={self.partitions} "
            f"pauses={self.pauses} "
            f"acked={self.acknowledged} {extra}"
        )


class Simulator:
    def __init__(self, seed: int, options: SimOptions | None = None) -> None:
        self.seed = seed
        self.options = options if options is not None else options_for_seed(seed)
        self.rng = random.Random(seed)
        self._pause_rng = random.Random(f"pause-faults-{seed}")
        count = self.options.voter_count + self.options.spare_count
        node_ids = [f"n{i}" for i in range(1, count + 1)]
        voters = node_ids[: self.options.voter_count]
        self.network = Network(self.rng, self.options.network)
        self.checker = Checker()
        self.cluster = Cluster(
            node_ids,
            voters,
            self.options.raft,
            self.rng,
            self.network,
            self.checker,
            self._make_disks(node_ids, voters),
            eager_messages=self.options.driver_fast_path,
        )
        self.workload = Workload(self.cluster, self.rng, self.options.workload, f"s{seed}")
        self.result = SimResult(seed)

    def _make_disks(
        self, node_ids: list[NodeId], voters: list[NodeId]
    ) -> dict[NodeId, Disk] | None:
        """Engine mode: each node's own MemoryFileSystem and crash rng (seeded from the
        run's seed, so the seed still replays the run); memory mode: the default."""
        if self.options.storage == "memory":
            return None
        log_config = LogConfig(segment_bytes_max=self.options.engine_segment_bytes_max)
        return {
            node_id: EngineDisk(
                log_config,
                random.Random(f"disk-{self.seed}-{node_id}"),
                voters if node_id in voters else (),
            )
            for node_id in node_ids
        }

    def engine_stats(self) -> EngineStats | None:
        """The engine's counters summed over the nodes; None in memory mode."""
        disks = [n.disk for n in self.cluster.nodes.values() if isinstance(n.disk, EngineDisk)]
        if not disks:
            return None
        total = EngineStats()
        for disk in disks:
            total.add(disk.stats)
        return total

    def run(self) -> SimResult:
        """Run both phases; raise SimulationFailedError on any violation."""
        try:
            for node_id in sorted(self.cluster.joined):
                self.cluster.start(node_id)
            for _ in range(self.options.safety_ticks):
                self._inject_faults()
                self.workload.step()
                self.step()
            self._liveness_phase()
        except Exception as error:  # a checker's finding, or the core crashing: both are reported
            ticks = self.options.safety_ticks
            custom_ticks = None if ticks == SAFETY_TICKS_DEFAULT else ticks
            raise SimulationFailedError(
                self.seed, self.cluster.now_tick, error, custom_ticks, self.options.storage
            ) from error
        return self._finish()

    def step(self) -> None:
        """One tick: deliver, complete due writes, tick, start new Readies, observe."""
        cluster = self.cluster
        cluster.now_tick += 1
        cluster.resume_due(cluster.now_tick)
        for message in self.network.deliver_due(cluster.now_tick):
            cluster.deliver(message)
        for node in cluster.up_nodes():
            if node.disk.is_due(cluster.now_tick) and node.raft is not None:
                cluster.complete_write(node.node_id)
        for node in cluster.up_nodes():
            cluster.tick(node.node_id)
        for node in cluster.up_nodes():
            delay = self.rng.randint(0, self.options.faults.disk_delay_ticks_max)
            cluster.pump(node.node_id, delay)
        cluster.observe()

    def _inject_faults(self) -> None:
        faults, rng, cluster = self.options.faults, self.rng, self.cluster
        up = [n.node_id for n in cluster.up_nodes()]
        down = [
            n.node_id
            for n in cluster.nodes.values()
            if n.raft is None and self._restartable(n.node_id)
        ]
        if up and rng.random() < faults.crash_probability:
            cluster.crash(rng.choice(up))
            self.result.crashes += 1
        leaders = sorted(core.node_id for core in cluster.leaders())
        if leaders and rng.random() < faults.leader_crash_probability:
            cluster.crash(rng.choice(leaders))
            self.result.crashes += 1
        if faults.pause_probability and self._pause_rng.random() < faults.pause_probability:
            self._pause_one()
        if down and rng.random() < faults.restart_probability:
            cluster.start(rng.choice(down))
        if rng.random() < faults.partition_probability:
            nodes = sorted(cluster.nodes)
            rng.shuffle(nodes)
            cut = rng.randint(1, len(nodes) - 1)
            self.network.partition([nodes[:cut]])
            self.result.partitions += 1
        elif self.network.is_partitioned() and rng.random() < faults.heal_probability:
            self.network.heal()

    def _pause_one(self) -> None:
        """Pause a running node, a leader half the time (from its own rng: seeds without
        pauses keep the schedules they had before pauses existed)."""
        cluster, rng = self.cluster, self._pause_rng
        running = sorted(n.node_id for n in cluster.up_nodes())
        leaders = sorted(core.node_id for core in cluster.leaders())
        pool = leaders if leaders and rng.random() < 0.5 else running
        if pool:
            until = cluster.now_tick + rng.randint(1, self.options.faults.pause_ticks_max)
            cluster.pause(rng.choice(pool), until)
            self.result.pauses += 1

    def _restartable(self, node_id: NodeId) -> bool:
        node = self.cluster.nodes[node_id]
        # a spare that was never added stays off until the workload adds it
        return not node.decommissioned and (node_id in self.cluster.joined or node.life > 0)

    def _liveness_phase(self) -> None:
        cluster = self.cluster
        cluster.resume_all()
        self.network.heal()
        self.network.options = NetworkOptions(
            delay_ticks_min=0, delay_ticks_max=self.options.network.delay_ticks_max
        )
        for node in sorted(cluster.nodes.values(), key=lambda n: n.node_id):
            if node.raft is None and self._restartable(node.node_id):
                cluster.start(node.node_id)
        self._await(
            "elect a leader followed by a majority",
            self._leader_elected,
            self.options.liveness_bound_ticks,
        )
        self._await("converge", self._converged, self._convergence_bound_ticks())
        members = cluster.members().members
        self.checker.check_acknowledged_kept(
            {m: cluster.nodes[m].disk.storage for m in sorted(members)}
        )

    def _await(self, goal: str, done: Callable[[], bool], bound_ticks: int) -> None:
        for _ in range(bound_ticks):
            if done():
                return
            self.step()
            self.result.liveness_ticks += 1
        if not done():
            raise InvariantViolationError(
                "liveness",
                f"the healed cluster did not {goal} within {bound_ticks} ticks; "
                f"nodes: {self.describe_nodes()}",
            )

    def _convergence_bound_ticks(self) -> int:
        """Catching a follower up is throughput-bound: each batch of at most
        max_entries_per_message costs a round trip and a write, so the bound grows with
        the longest log (an upper bound on the backlog)."""
        options = self.options
        longest = max(n.disk.storage.last_index() for n in self.cluster.nodes.values())
        batches = -(-longest // options.raft.max_entries_per_message)
        batch_ticks = 2 * options.network.delay_ticks_max + options.faults.disk_delay_ticks_max + 2
        return options.liveness_bound_ticks + batches * batch_ticks

    def _leader_elected(self) -> bool:
        for leader in self.cluster.leaders():
            followers = [
                v
                for v in leader.configuration.voters
                if (core := self.cluster.nodes[v].raft) is not None
                and (core.leader_id, core.term) == (leader.node_id, leader.term)
            ]
            if 2 * len(followers) > len(leader.configuration.voters):
                return True
        return False

    def _converged(self) -> bool:
        """One leader of the newest term, every member following it, every log
        committed to the leader's last index and applied, no write in flight."""
        leaders = self.cluster.leaders()
        if len(leaders) != 1:
            return False
        leader = leaders[0]
        last_index = leader.status().last_index
        if leader.commit_index != last_index:
            return False
        for member in leader.configuration.members:
            node = self.cluster.nodes[member]
            core = node.raft
            if core is None or node.disk.pending is not None:
                return False
            if (core.leader_id, core.term) != (leader.node_id, leader.term):
                return False
            if core.commit_index != last_index or node.applied_index != last_index:
                return False
        return not any(n.raft.has_ready() for n in self.cluster.up_nodes() if n.raft)

    def describe_nodes(self) -> str:
        """One clause per node, for failure messages."""
        parts = []
        for node_id, node in sorted(self.cluster.nodes.items()):
            if node.raft is None:
                state = "decommissioned" if node.decommissioned else "down"
                parts.append(f"{node_id} {state}")
                continue
            s = node.raft.status()
            voters = ",".join(sorted(s.configuration.voters))
            learners = ",".join(sorted(s.configuration.learners))
            parts.append(
                f"{node_id} {s.role.value} term={s.term} leader={s.leader_id} "
                f"commit={s.commit_index} last={s.last_index} applied={node.applied_index} "
                f"voters=[{voters}] learners=[{learners}]"
            )
        return "; ".join(parts)

    def _finish(self) -> SimResult:
        result = self.result
        result.ticks = self.cluster.now_tick
        result.terms = max(self.checker.leader_by_term, default=0)
        result.acknowledged = len(self.checker.acknowledged)
        stats = self.workload.stats
        result.stats = {
            "proposed": stats.proposed,
            "conf_changes": stats.conf_changes,
            "transfers": stats.transfers,
            "reads": self.checker.reads_answered,
            "compactions": stats.compactions,
            "voters": self.options.voter_count,
        }
        engine_stats = self.engine_stats()
        if engine_stats is not None:
            result.stats |= engine_stats.as_dict()
        return result


def run_seed(
    seed: int, safety_ticks: int = SAFETY_TICKS_DEFAULT, storage: StorageMode = "memory"
) -> SimResult:
    return Simulator(seed, options_for_seed(seed, safety_ticks, storage)).run()
