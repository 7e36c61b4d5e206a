"""Failover under a history-checked workload: the leader SIGKILLed, SIGSTOPped and resumed, then
every node crashed and restarted, then a rolling restart (SIGTERM, start, one node at a time),
while five producers write with deadlines (unary Produce, ProduceBatch, a pipelined ProduceStream,
a pipelined ProduceBatchStream, and LogClient.produce_many, which sends again what a refusing
node did not take) and a reader follows the tail hopping from node to node.

At the end every node must hold the same committed log, with every acknowledged record at the
offset it was acknowledged at, no value twice, offsets dense from 0, no record whose produce
certainly failed, and nothing the reader saw that is not in the final log (logmesh.history).
Timeouts count as unknown outcomes, never as failures. The checker's summary line is printed
(run pytest with -s to see it).
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_cluster_workload import Workload, check_cluster

from logmesh.cluster import StorageCluster

# Acknowledgements to wait for between faults: the cluster must make progress after each.
PROGRESS_RECORDS = 100


def test_no_acknowledged_write_lost_across_leader_kill_pause_and_full_restart(
    make_storage_cluster: Callable[..., StorageCluster],
) -> None:
    cluster = make_storage_cluster()
    with Workload(cluster) as workload:
        workload.wait_progress(PROGRESS_RECORDS, "before any fault")

        killed = cluster.leader()
        cluster.kill(killed)
        assert cluster.leader() is not killed
        workload.wait_progress(PROGRESS_RECORDS, f"after SIGKILL of leader {killed.node_id}")
        cluster.start_again(killed)
        workload.wait_progress(PROGRESS_RECORDS, f"after {killed.node_id} came back")

        paused = cluster.leader()
        cluster.pause(paused)
        assert cluster.leader() is not paused
        workload.wait_progress(PROGRESS_RECORDS, f"with leader {paused.node_id} paused")
        cluster.resume(paused)
        workload.wait_progress(PROGRESS_RECORDS, f"after {paused.node_id} resumed")

        for node in cluster.nodes:
            cluster.kill(node)
        for node in cluster.nodes:
            cluster.start_again(node)
        workload.wait_progress(PROGRESS_RECORDS, "after every node crashed and restarted")

        for node in cluster.nodes:  # a rolling restart: SIGTERM, start, next
            cluster.restart(node)
            workload.wait_progress(PROGRESS_RECORDS, f"after {node.node_id} restarted")

    report = check_cluster(cluster, workload.history, observed=workload.observations())
    print(f"producer errors by code: {workload.errors()}")

    report.assert_ok()
    assert report.acknowledged >= 9 * PROGRESS_RECORDS
    assert report.observed_records > 0  # a reader followed the tail through every fault
    assert len(report.node_ranges) == 3


EXTRA_FAULTS = 2
# Replay or explore other schedules with LOGMESH_FAULT_SEED=N.
SEED = int(os.environ.get("LOGMESH_FAULT_SEED", "20261123"))


def test_no_acknowledged_write_lost_across_seeded_random_faults(
    make_storage_cluster: Callable[..., StorageCluster],
) -> None:
    """Every kind of fault once in a seeded order, then a few more drawn at random (the seed is
    printed), progress awaited after each: crash or pause the leader or a follower, restart a
    node, crash a majority and bring it back."""
    rng = random.Random(SEED)
    kinds = sorted(FAULTS)
    schedule = rng.sample(kinds, len(kinds)) + rng.choices(kinds, k=EXTRA_FAULTS)
    cluster = make_storage_cluster()
    with Workload(cluster) as workload:
        workload.wait_progress(PROGRESS_RECORDS, "before any fault")
        for i, fault in enumerate(schedule):
            FAULTS[fault](cluster, workload, rng)
            workload.wait_progress(PROGRESS_RECORDS, f"after {schedule[: i + 1]} (seed {SEED})")

    report = check_cluster(cluster, workload.history, observed=workload.observations())
    print(f"seed {SEED}, faults {schedule}")

    report.assert_ok()


def _crash_leader(cluster: StorageCluster, workload: Workload, rng: random.Random) -> None:
    leader = cluster.leader()
    cluster.kill(leader)
    workload.wait_progress(PROGRESS_RECORDS // 2, "with the leader down")
    cluster.start_again(leader)


def _crash_follower(cluster: StorageCluster, workload: Workload, rng: random.Random) -> None:
    follower = rng.choice(cluster.followers())
    cluster.kill(follower)
    workload.wait_progress(PROGRESS_RECORDS // 2, "with a follower down")
    cluster.start_again(follower)


def _pause_leader(cluster: StorageCluster, workload: Workload, rng: random.Random) -> None:
    leader = cluster.leader()
    cluster.pause(leader)
    workload.wait_progress(PROGRESS_RECORDS // 2, "with the leader paused")
    cluster.resume(leader)


def _pause_follower(cluster: StorageCluster, workload: Workload, rng: random.Random) -> None:
    follower = rng.choice(cluster.followers())
    cluster.pause(follower)
    workload.wait_progress(PROGRESS_RECORDS // 2, "with a follower paused")
    cluster.resume(follower)


def _restart_any(cluster: StorageCluster, workload: Workload, rng: random.Random) -> None:
    cluster.restart(rng.choice(cluster.nodes))


def _crash_majority(cluster: StorageCluster, workload: Workload, rng: random.Random) -> None:
    victims = rng.sample(cluster.nodes, 2)
    for node in victims:
        cluster.kill(node)
    # No quorum: wait until the producers have noticed, then bring the majority back.
    workload.wait_errors(1, "with a majority down")
    for node in victims:
        cluster.start_again(node)


FAULTS: dict[str, Callable[[StorageCluster, Workload, random.Random], None]] = {
    "crash-leader": _crash_leader,
    "crash-follower": _crash_follower,
    "pause-leader": _pause_leader,
    "pause-follower": _pause_follower,
    "restart-any": _restart_any,
    "crash-majority": _crash_majority,
}
