"""Retention and the snapshot path on real processes.

Nodes run with small segments and a small size limit, so retention drops old segments while a
stopped follower misses writes. When the leader no longer holds the entries that follower
needs, the follower is restarted: it must catch up through InstallSnapshot (its log restarts at
the leader's first retained entry), hold the same committed records as the others from there,
and answer reads below its start with OUT_OF_RANGE / OFFSET_TRUNCATED naming where it starts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_cluster_workload import check_cluster, classify, committed_range, wait_until

from logmesh._gen.log.v1 import log_pb2 as pb
from logmesh._gen.log.v1 import log_pb2_grpc
from logmesh.cluster import StorageCluster, StorageNode
from logmesh.errors import OffsetTruncatedError, from_rpc_error
from logmesh.history import History, Outcome, make_value

SEGMENT_BYTES_MAX = 4096
RETENTION_BYTES_MAX = 16384
BATCH_RECORDS = 50
VALUE_BYTES = 100
CALL_DEADLINE_S = 10.0
RETENTION_TIMEOUT_S = 60.0
CATCH_UP_TIMEOUT_S = 30.0


def produce_batches(cluster: StorageCluster, history: History, batches: int, first: int) -> int:
    """`batches` acknowledged ProduceBatch calls on the leader, each recorded record by record;
    a failed or unknown call is recorded as such and followed by a new batch on the leader of
    the moment (elections can happen on this busy machine). Returns the next batch number."""
    acknowledged, number = 0, first
    while acknowledged < batches:
        assert number < first + 2 * batches + 10, "too many batches failed: see the node logs"
        values = [make_value(number, i, VALUE_BYTES) for i in range(BATCH_RECORDS)]
        number += 1
        for value in values:
            history.invoke(value)
        stub = log_pb2_grpc.LogStub(cluster.channel(cluster.leader()))
        request = pb.ProduceBatchRequest(records=[pb.Record(value=v) for v in values])
        try:
            reply = stub.ProduceBatch(request, timeout=CALL_DEADLINE_S)
        except grpc.RpcError as e:
            record = history.failed if classify(e) is Outcome.FAILED else history.unknown
            for value in values:
                record(value)
            continue
        assert reply.count == len(values)
        history.ok_batch(values, int(reply.first_offset))
        acknowledged += 1
    return number


def first_offset(cluster: StorageCluster, node: StorageNode) -> int:
    span = committed_range(cluster, node)
    return -1 if span is None else span[0]


def consume_errors(cluster: StorageCluster, node: StorageNode, offset: int) -> list[grpc.RpcError]:
    """The errors of Consume and of ConsumeStream (batched and not) at `offset`."""
    stub = log_pb2_grpc.LogStub(cluster.channel(node))
    errors = []
    with pytest.raises(grpc.RpcError) as caught:
        stub.Consume(pb.ConsumeRequest(offset=offset), timeout=CALL_DEADLINE_S)
    errors.append(caught.value)
    for batch in (0, 100):
        request = pb.ConsumeRequest(offset=offset, max_batch_records=batch)
        with pytest.raises(grpc.RpcError) as caught:
            next(iter(stub.ConsumeStream(request, timeout=CALL_DEADLINE_S)))
        errors.append(caught.value)
    return errors


def retention_cluster(make_storage_cluster: Callable[..., StorageCluster]) -> StorageCluster:
    """Three nodes with small segments and a small size limit, so retention runs soon."""
    return make_storage_cluster(
        extra_args=[
            "--segment-bytes-max",
            str(SEGMENT_BYTES_MAX),
            "--retention-bytes-max",
            str(RETENTION_BYTES_MAX),
        ]
    )


def test_follower_behind_retention_catches_up_through_a_snapshot(
    make_storage_cluster: Callable[..., StorageCluster],
) -> None:
    cluster = retention_cluster(make_storage_cluster)
    history = History()
    produce_batches(cluster, history, batches=4, first=0)
    leader = cluster.leader()
    lagging = next(n for n in cluster.nodes if n is not leader)
    wait_until(
        lambda: committed_range(cluster, lagging) == committed_range(cluster, leader),
        CATCH_UP_TIMEOUT_S,
        "the follower to hold everything before it stops",
    )
    span = committed_range(cluster, lagging)
    assert span is not None
    missed_from = span[1]
    lagging.process.stop()
    others = [n for n in cluster.nodes if n is not lagging]

    # Write on the two remaining nodes until both (whichever leads when the follower comes
    # back) have dropped what the follower needs.
    batch = 100
    while min(first_offset(cluster, n) for n in others) <= missed_from:
        assert batch < 1000, "retention never dropped the segments the follower needs"
        batch = produce_batches(cluster, history, batches=4, first=batch)

    cluster.start_again(lagging)
    snapshot = lagging.process.wait_for(
        lambda e: e.get("event") == "snapshot", CATCH_UP_TIMEOUT_S, "a snapshot install"
    )
    report = check_cluster(cluster, history, retention=True)
    report.assert_ok()

    restarted_at = int(snapshot["next_offset"])
    leader_starts = {
        e["first_offset"] for n in others for e in n.process.events() if _is_retention(e)
    }
    print(
        f"follower stopped at offset {missed_from}; others retained from {sorted(leader_starts)}; "
        f"follower restarted its log at {restarted_at}; ranges now {report.node_ranges}"
    )
    # The entries between missed_from and the leader's start exist nowhere any more: the
    # follower's log restarted exactly where the leader's retained log began at that moment.
    assert restarted_at > missed_from
    assert restarted_at in leader_starts
    assert first_offset(cluster, lagging) >= restarted_at

    for node in cluster.nodes:
        for error in consume_errors(cluster, node, 0):
            assert error.code() == grpc.StatusCode.OUT_OF_RANGE, error
            err = from_rpc_error(error)
            assert isinstance(err, OffsetTruncatedError), err
            assert err.offset == 0
            # Retention may move the start on between the two calls, never back.
            assert 0 < err.first_offset <= first_offset(cluster, node)


def test_retention_keeps_the_log_under_its_size_limit_on_every_node(
    make_storage_cluster: Callable[..., StorageCluster],
) -> None:
    cluster = retention_cluster(make_storage_cluster)
    history = History()
    produce_batches(cluster, history, batches=40, first=0)  # 2000 records, ~200 KiB of values
    # What is left fits the limit plus the segment being written, which may overshoot its
    # maximum by one batch (a batch is one write). Retention runs every second: wait for it.
    kept_bytes_max = RETENTION_BYTES_MAX + SEGMENT_BYTES_MAX + BATCH_RECORDS * VALUE_BYTES

    spans: dict[str, tuple[int, int] | None] = {}

    def within_limit() -> bool:
        spans.update({n.node_id: committed_range(cluster, n) for n in cluster.nodes})
        return all(
            span is not None and span[0] > 0 and (span[1] - span[0]) * VALUE_BYTES <= kept_bytes_max
            for span in spans.values()
        )

    wait_until(
        within_limit,
        RETENTION_TIMEOUT_S,
        f"retention to keep at most {kept_bytes_max} bytes of values on every node",
        lambda: f"committed ranges {spans}",
    )

    report = check_cluster(cluster, history, retention=True)

    report.assert_ok()
    assert report.acknowledged_truncated > 0
    assert report.committed_records < 2000


def _is_retention(event: dict[str, Any]) -> bool:
    return event.get("event") == "retention"
