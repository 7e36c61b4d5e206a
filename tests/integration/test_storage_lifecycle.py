"""Storage node lifecycle on real processes: restart after a clean stop or a crash without
losing or duplicating records, SIGTERM on the leader hands leadership over and exits 0, and a
node that fell behind the leader's retained start catches up through the snapshot path.

Each test makes its own cluster, since it stops or kills nodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import grpc
import pytest

from logmesh._gen.log.v1 import log_pb2 as pb
from logmesh._gen.log.v1 import log_pb2_grpc
from logmesh.cluster import StorageCluster, StorageNode
from logmesh.errors import OffsetTruncatedError, from_rpc_error

CALL_DEADLINE_S = 10.0
MakeCluster = Callable[..., StorageCluster]


def stub(cluster: StorageCluster, node: StorageNode) -> log_pb2_grpc.LogStub:
    return log_pb2_grpc.LogStub(cluster.channel(node))


def produce_batch(cluster: StorageCluster, values: list[bytes]) -> int:
    reply = stub(cluster, cluster.leader()).ProduceBatch(
        pb.ProduceBatchRequest(records=[pb.Record(value=v) for v in values]),
        timeout=CALL_DEADLINE_S,
    )
    assert reply.count == len(values)
    return int(reply.first_offset)


def read_all(cluster: StorageCluster, node: StorageNode, first: int, count: int) -> list[bytes]:
    """`count` committed records from `first` on `node` (waiting for them to arrive)."""
    call = stub(cluster, node).ConsumeStream(
        pb.ConsumeRequest(offset=first, max_batch_records=100), timeout=CALL_DEADLINE_S
    )
    values: list[bytes] = []
    for message in call:
        values.extend(r.value for r in message.records)
        if len(values) >= count:
            break
    call.cancel()
    return values


def values(prefix: str, count: int) -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(count)]


def test_restart_after_clean_stop_keeps_every_record(make_storage_cluster: MakeCluster) -> None:
    cluster = make_storage_cluster()
    before = values("before", 30)
    assert produce_batch(cluster, before) == 0
    assert set(cluster.stop().values()) == {0}
    cluster.start()  # the same flags again: nodes with state ignore --bootstrap and --join
    after = values("after", 10)
    assert produce_batch(cluster, after) == 30  # offsets continue: nothing lost or repeated
    for node in cluster.nodes:
        assert read_all(cluster, node, 0, 40) == before + after


def test_crashed_follower_restarts_and_catches_up(make_storage_cluster: MakeCluster) -> None:
    cluster = make_storage_cluster()
    first = values("first", 10)
    produce_batch(cluster, first)
    follower = cluster.followers()[0]
    cluster.kill(follower)
    during = values("during", 20)
    assert produce_batch(cluster, during) == 10  # two of three nodes are a majority
    cluster.start_again(follower)
    assert read_all(cluster, follower, 0, 30) == first + during


def test_crashed_leader_loses_no_acknowledged_write(make_storage_cluster: MakeCluster) -> None:
    cluster = make_storage_cluster()
    acknowledged = values("acked", 25)
    produce_batch(cluster, acknowledged)
    old_leader = cluster.leader()
    cluster.kill(old_leader)
    new_leader = cluster.leader()
    assert new_leader is not old_leader
    later = values("later", 5)
    assert produce_batch(cluster, later) == 25
    cluster.start_again(old_leader)
    for node in cluster.nodes:
        assert read_all(cluster, node, 0, 30) == acknowledged + later


def test_sigterm_on_leader_hands_over_leadership_and_exits_zero(
    make_storage_cluster: MakeCluster,
) -> None:
    cluster = make_storage_cluster()
    produce_batch(cluster, values("x", 5))
    leader = cluster.leader()
    assert leader.process.stop() == 0
    events = [e for e in leader.process.events() if e.get("event") in ("role", "stopped")]
    # The leader stepped down to a successor it chose before it stopped, not after.
    assert events[-1]["event"] == "stopped"
    assert events[-2]["event"] == "role" and events[-2]["role"] == "follower"
    successor = events[-2]["leader"]
    assert successor not in (None, leader.node_id)
    assert cluster.leader().node_id == successor
    assert produce_batch(cluster, values("y", 5)) == 5


def test_lagging_follower_catches_up_through_a_snapshot(make_storage_cluster: MakeCluster) -> None:
    cluster = make_storage_cluster(
        extra_args=["--segment-bytes-max", "2048", "--retention-bytes-max", "4096"]
    )
    leader = cluster.leader()
    lagging = cluster.followers()[0]
    cluster.kill(lagging)
    written: list[bytes] = []
    for batch in itertools.count():
        chunk = [f"b{batch}-{i}".encode() * 20 for i in range(20)]
        produce_batch(cluster, chunk)
        written += chunk
        if len(written) >= 200:
            break
    retention = leader.process.wait_for(
        lambda e: e.get("event") == "retention" and e["first_offset"] > 0, 30, "retention"
    )
    cluster.start_again(lagging)
    snapshot = lagging.process.wait_for(lambda e: e.get("event") == "snapshot", 30, "snapshot")
    start = snapshot["next_offset"]
    assert start >= retention["first_offset"] > 0
    assert read_all(cluster, lagging, start, len(written) - start) == written[start:]
    with pytest.raises(grpc.RpcError) as caught:
        stub(cluster, lagging).Consume(pb.ConsumeRequest(offset=0), timeout=CALL_DEADLINE_S)
    error = from_rpc_error(caught.value)
    assert isinstance(error, OffsetTruncatedError)
    assert error.first_offset == start


def test_sigterm_ends_consume_streams_with_unavailable_and_the_resume_offset(
    make_storage_cluster: MakeCluster,
) -> None:
    cluster = make_storage_cluster()
    produce_batch(cluster, values("z", 3))
    follower = cluster.followers()[0]
    call = stub(cluster, follower).ConsumeStream(
        pb.ConsumeRequest(offset=0), timeout=CALL_DEADLINE_S
    )
    assert [next(call).record.offset for _ in range(3)] == [0, 1, 2]  # now at the tail
    assert follower.process.stop() == 0
    with pytest.raises(grpc.RpcError) as caught:
        next(call)
    error = caught.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "resume from offset 3" in (error.details() or "")


def test_a_follower_restarted_on_a_new_port_is_found_again(
    make_storage_cluster: MakeCluster,
) -> None:
    cluster = make_storage_cluster()
    produce_batch(cluster, values("old", 5))
    follower = cluster.followers()[0]
    old_address = follower.address
    assert follower.process.stop() == 0
    args = follower.process.args
    args[args.index("--listen") + 1] = "127.0.0.1:0"  # as if it moved to another port
    cluster.start_again(follower)
    assert follower.address != old_address
    # It campaigns once the leader stays silent, and its new address travels with its votes.
    assert produce_batch(cluster, values("new", 5)) == 5
    assert read_all(cluster, follower, 0, 10) == values("old", 5) + values("new", 5)
    leader_view = cluster.status(cluster.leader())
    assert {p.id: p.address for p in leader_view.peers}[follower.node_id] == follower.address


def test_every_node_crashing_at_once_loses_no_acknowledged_write(
    make_storage_cluster: MakeCluster,
) -> None:
    cluster = make_storage_cluster()
    acknowledged = values("acked", 40)
    for i in range(0, 40, 10):  # several batches, so several commit index updates
        produce_batch(cluster, acknowledged[i : i + 10])
    for node in cluster.nodes:
        cluster.kill(node)
    cluster.start()
    assert produce_batch(cluster, values("after", 1)) == 40
    for node in cluster.nodes:
        assert read_all(cluster, node, 0, 41) == acknowledged + values("after", 1)
