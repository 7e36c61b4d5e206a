"""The options of a simulated run, and how a seed chooses them.

Each seed draws its cluster size, Raft tunables, network and disk faults and workload
mix from its own rng (separate from the run's), from gentle to harsh; a share of seeds
run the "storm" profile of leader churn. Pure data: no simulation happens here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Literal

from logmesh_storage.raft.config import RaftConfig

from .network import NetworkOptions
from .workload import WorkloadOptions

SAFETY_TICKS_DEFAULT = 600
STORM_FRACTION = 0.25  # share of seeds that run the storm (leader churn) profile
# Engine mode: segments this small hold about 10 to 80 of the simulator's entries, so
# rolls, whole-segment drops and resets happen in every run.
ENGINE_SEGMENT_BYTES_CHOICES = (512, 1024, 2048, 4096)
CRASH_DURING_COMPACTION_PROBABILITY = 0.1

StorageMode = Literal["memory", "engine"]
STORAGE_MODES: tuple[StorageMode, ...] = ("memory", "engine")


@dataclass(frozen=True)
class FaultOptions:
    crash_probability: float  # per tick: one random live node crashes
    leader_crash_probability: float  # per tick: a leader crashes (leader churn: Figure 8)
    restart_probability: float  # per tick: one random crashed node restarts
    partition_probability: float  # per tick: the network splits in two at random
    heal_probability: float  # per tick: a partition heals
    disk_delay_ticks_max: int  # a write becomes durable 0..max ticks after it began
    # per tick: a live node (a leader half the time) is paused for 1..pause_ticks_max ticks
    pause_probability: float = 0.0
    pause_ticks_max: int = 0


@dataclass(frozen=True)
class SimOptions:
    voter_count: int
    spare_count: int
    raft: RaftConfig
    network: NetworkOptions
    faults: FaultOptions
    workload: WorkloadOptions
    safety_ticks: int = SAFETY_TICKS_DEFAULT
    liveness_ticks_max: int = 0  # 0: 30 election timeouts
    storage: StorageMode = "memory"  # "engine": the real log engine on a simulated disk
    engine_segment_bytes_max: int = ENGINE_SEGMENT_BYTES_CHOICES[-1]
    # Ship take_messages() while a write is pending, as the storage node's driver does.
    driver_fast_path: bool = False

    @property
    def liveness_bound_ticks(self) -> int:
        return self.liveness_ticks_max or 30 * self.raft.election_timeout_ticks


def options_for_seed(
    seed: int, safety_ticks: int = SAFETY_TICKS_DEFAULT, storage: StorageMode = "memory"
) -> SimOptions:
    """Each seed picks its own cluster size and fault mix, from gentle to harsh,
    with its own rng so that the run's stream does not depend on this choice. In
    engine mode the seed also picks a segment size, from yet another rng, so that a
    seed keeps its cluster and faults in both modes."""
    options = _with_pauses(seed, _with_node_fast_path(seed, _options_for_seed(seed, safety_ticks)))
    if storage == "memory":
        return options
    segment_bytes_max = random.Random(f"engine-{seed}").choice(ENGINE_SEGMENT_BYTES_CHOICES)
    workload = replace(
        options.workload, crash_during_compaction_probability=CRASH_DURING_COMPACTION_PROBABILITY
    )
    return replace(
        options, storage=storage, engine_segment_bytes_max=segment_bytes_max, workload=workload
    )


def _with_node_fast_path(seed: int, options: SimOptions) -> SimOptions:
    """Half the seeds run the core as the storage node configures and drives it (deferred
    commit notices, quiet heartbeats, messages shipped while a write is pending), drawn from
    their own rng so the rest of a seed's options stay put."""
    if random.Random(f"fast-path-{seed}").random() < 0.5:
        return options
    raft = replace(options.raft, defer_commit_notices=True, quiet_heartbeats=True)
    return replace(options, raft=raft, driver_fast_path=True)


def _with_pauses(seed: int, options: SimOptions) -> SimOptions:
    """Half the seeds pause nodes (SIGSTOP, then SIGCONT: the node resumes into whatever term
    the others reached, its write and its backlog of messages still to handle), drawn from
    their own rng so the rest of a seed's options stay put."""
    rng = random.Random(f"pauses-{seed}")
    if rng.random() < 0.5:
        return options
    faults = replace(
        options.faults,
        pause_probability=rng.choice([0.005, 0.02]),
        pause_ticks_max=rng.choice([5, 15, 30]),
    )
    return replace(options, faults=faults)


def _options_for_seed(seed: int, safety_ticks: int) -> SimOptions:
    rng = random.Random(f"options-{seed}")
    if rng.random() < STORM_FRACTION:
        return _storm_options(rng, safety_ticks)
    pre_vote, check_quorum = rng.choice([(True, True), (True, True), (False, True), (True, False)])
    return SimOptions(
        voter_count=rng.choice([3, 3, 4, 5, 5]),
        spare_count=2,
        raft=RaftConfig(
            election_timeout_ticks=10,
            heartbeat_interval_ticks=rng.choice([1, 2, 3]),
            max_entries_per_message=rng.choice([1, 2, 4, 64]),
            max_inflight_messages=rng.choice([1, 4, 256]),
            pre_vote=pre_vote,
            check_quorum=check_quorum,
        ),
        network=NetworkOptions(
            delay_ticks_min=0,
            delay_ticks_max=rng.choice([1, 2, 3, 5]),
            loss_probability=rng.choice([0.0, 0.02, 0.1, 0.25]),
            duplicate_probability=rng.choice([0.0, 0.02, 0.1]),
        ),
        faults=FaultOptions(
            crash_probability=rng.choice([0.002, 0.01, 0.03]),
            leader_crash_probability=rng.choice([0.0, 0.01, 0.03]),
            restart_probability=rng.choice([0.03, 0.1, 0.3]),
            partition_probability=rng.choice([0.0, 0.005, 0.02]),
            heal_probability=rng.choice([0.02, 0.05, 0.2]),
            disk_delay_ticks_max=rng.choice([0, 1, 3, 6]),
        ),
        workload=WorkloadOptions(
            propose_probability=rng.choice([0.1, 0.3, 0.6]),
            conf_change_probability=rng.choice([0.0, 0.01, 0.03]),
            transfer_probability=rng.choice([0.0, 0.005, 0.02]),
            read_probability=rng.choice([0.0, 0.05]),
            compact_probability=rng.choice([0.0, 0.01, 0.05]),
        ),
        safety_ticks=safety_ticks,
    )


def _storm_options(rng: random.Random, safety_ticks: int) -> SimOptions:
    """Leader churn on a small cluster with one entry per message: the schedules of
    the Raft paper's Figure 8, where an old-term entry reaches a majority between two
    leader crashes."""
    return SimOptions(
        voter_count=3,
        spare_count=2,
        raft=RaftConfig(
            election_timeout_ticks=10,
            heartbeat_interval_ticks=rng.choice([1, 2]),
            max_entries_per_message=1,
            max_inflight_messages=rng.choice([1, 256]),
            pre_vote=rng.choice([True, False]),
            check_quorum=rng.choice([True, False]),
        ),
        network=NetworkOptions(
            delay_ticks_min=0,
            delay_ticks_max=rng.choice([1, 3]),
            loss_probability=rng.choice([0.0, 0.05, 0.2]),
            duplicate_probability=rng.choice([0.0, 0.05]),
        ),
        faults=FaultOptions(
            crash_probability=rng.choice([0.0, 0.01]),
            leader_crash_probability=rng.choice([0.03, 0.06, 0.1]),
            restart_probability=rng.choice([0.1, 0.3]),
            partition_probability=rng.choice([0.0, 0.01]),
            heal_probability=0.1,
            disk_delay_ticks_max=rng.choice([0, 2, 4]),
        ),
        workload=WorkloadOptions(
            propose_probability=rng.choice([0.3, 0.6]),
            conf_change_probability=0.0,
            transfer_probability=rng.choice([0.0, 0.01]),
            read_probability=0.05,
            compact_probability=0.0,
        ),
        safety_ticks=safety_ticks,
    )
