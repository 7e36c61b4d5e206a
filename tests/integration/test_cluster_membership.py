"""Membership on real processes, each under a history-checked workload: a fourth node joins as a
learner, catches up on a moving log and becomes a voter; a follower, or the leader itself,
leaves and the cluster goes on committing without it; SIGTERM on the leader hands leadership
over faster than any election could, and loses no acknowledged write.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_cluster_workload import Workload, check_cluster, wait_until

from logmesh._gen.logmesh.v1 import admin_pb2, admin_pb2_grpc
from logmesh.cluster import StorageCluster, StorageNode
from logmesh.history import Outcome

PROGRESS_RECORDS = 100
ADMIN_DEADLINE_S = 10.0
START_TIMEOUT_S = 30.0


def admin(cluster: StorageCluster, node: StorageNode) -> admin_pb2_grpc.AdminStub:
    return admin_pb2_grpc.AdminStub(cluster.channel(node, "root"))


def leader_seen_by(cluster: StorageCluster, node: StorageNode) -> str:
    try:
        return str(cluster.status(node).leader_id)
    except grpc.RpcError:
        return ""


def longest_gap_between_acks_s(workload: Workload, since_s: float) -> float:
    """The longest time after since_s with no produce acknowledged (clock: time.monotonic)."""
    acks = sorted(
        op.completed_s
        for op in workload.history.operations()
        if op.outcome is Outcome.OK and op.completed_s is not None and op.completed_s >= since_s
    )
    assert acks, "nothing was acknowledged after the fault"
    return max(b - a for a, b in zip([since_s, *acks], acks, strict=False))


def test_fourth_node_joins_catches_up_and_becomes_a_voter(
    make_storage_cluster: Callable[..., StorageCluster],
) -> None:
    cluster = make_storage_cluster()
    with Workload(cluster) as workload:
        workload.wait_progress(PROGRESS_RECORDS, "before the join")
        joiner = cluster.add_node("storage-3", cluster.leader())
        # Promotion waits until the learner has caught up with a log that keeps growing.
        cluster.wait_for_voters([n.node_id for n in cluster.nodes], START_TIMEOUT_S)
        workload.wait_progress(PROGRESS_RECORDS, "with four voters")

    report = check_cluster(cluster, workload.history, observed=workload.observations())

    report.assert_ok()
    assert report.node_ranges[joiner.node_id] == (0, report.committed_records)
    status = cluster.status(cluster.leader())
    assert sorted(status.voters) == [f"storage-{i}" for i in range(4)]
    assert not status.learners


@pytest.mark.parametrize("role", ["follower", "leader"])
def test_node_that_leaves_is_dropped_and_the_rest_keep_committing(
    make_storage_cluster: Callable[..., StorageCluster], role: str
) -> None:
    cluster = make_storage_cluster()
    with Workload(cluster) as workload:
        workload.wait_progress(PROGRESS_RECORDS, "before the leave")
        leader = cluster.leader()
        # A leader that removes itself steps down once the change commits.
        leaving = leader if role == "leader" else next(n for n in cluster.nodes if n is not leader)
        admin(cluster, leader).Leave(
            admin_pb2.LeaveRequest(id=leaving.node_id), timeout=ADMIN_DEADLINE_S
        )
        staying = [n for n in cluster.nodes if n is not leaving]

        def dropped(event: dict[str, Any]) -> bool:
            voters = event.get("voters", [leaving.node_id])
            return event.get("event") == "membership" and leaving.node_id not in voters

        for node in staying:
            node.process.wait_for(dropped, START_TIMEOUT_S, f"{node.node_id} to drop the node")
        assert leaving.process.stop() == 0
        # Two voters left: both must acknowledge every write, so progress proves the
        # configuration no longer counts the stopped node.
        workload.wait_progress(PROGRESS_RECORDS, f"after {leaving.node_id} left")

    report = check_cluster(
        cluster, workload.history, nodes=staying, observed=workload.observations()
    )

    report.assert_ok()
    status = cluster.status(cluster.leader())
    assert leaving.node_id not in status.voters
    assert leaving.node_id not in status.learners


def test_sigterm_on_the_leader_hands_over_leadership_without_an_election_timeout(
    make_storage_cluster: Callable[..., StorageCluster],
) -> None:
    # A long election timeout (100 ticks of 20 ms: 2 s at least) so that a handover through
    # leadership transfer is told apart from followers timing out and electing a leader.
    cluster = make_storage_cluster(election_ticks=100)
    election_timeout_s = cluster.election_ticks * cluster.tick_ms / 1000
    with Workload(cluster) as workload:
        workload.wait_progress(PROGRESS_RECORDS, "before SIGTERM")
        old = cluster.leader()
        others = [n for n in cluster.nodes if n is not old]
        sent_s = time.monotonic()
        stopping = threading.Thread(target=old.process.stop, name="sigterm-leader")
        stopping.start()

        def new_leader_agreed() -> bool:
            seen = {leader_seen_by(cluster, n) for n in others}
            return len(seen) == 1 and seen.pop() in {n.node_id for n in others}

        wait_until(new_leader_agreed, START_TIMEOUT_S, "a new leader after SIGTERM")
        handover_s = time.monotonic() - sent_s
        stopping.join(START_TIMEOUT_S)
        workload.wait_progress(PROGRESS_RECORDS, "after the handover")

    unavailable_s = longest_gap_between_acks_s(workload, sent_s)
    print(
        f"\nleadership handed over {handover_s * 1000:.0f} ms after SIGTERM; longest time "
        f"without an acknowledged write {unavailable_s * 1000:.0f} ms"
    )
    assert handover_s < election_timeout_s, (
        f"new leader after {handover_s:.2f} s: no faster than an election "
        f"({election_timeout_s:.1f} s), so the leader did not transfer leadership"
    )
    assert unavailable_s < election_timeout_s, (
        f"no write acknowledged for {unavailable_s:.2f} s around the handover: as long as an "
        f"election ({election_timeout_s:.1f} s)"
    )
    assert old.process.returncode == 0, "a SIGTERM is a clean stop: exit status 0"
    report = check_cluster(
        cluster, workload.history, nodes=others, observed=workload.observations()
    )
    report.assert_ok()
