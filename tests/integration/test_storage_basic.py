"""A 3-node storage cluster on loopback, driven through its gRPC API over mutual TLS.

Covers DESIGN §2 on real processes: produce/consume (unary, streams, batches) on every node,
the error contract (NOT_LEADER with the leader's address, OUT_OF_RANGE past the end), who may
call what, and that callers without a valid client certificate are refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from logmesh._gen.log.v1 import log_pb2 as pb
from logmesh._gen.log.v1 import log_pb2_grpc
from logmesh._gen.logmesh.v1 import admin_pb2, admin_pb2_grpc, raft_pb2, raft_pb2_grpc
from logmesh.certs import init_certs
from logmesh.cluster import StorageCluster, StorageNode
from logmesh.errors import (
    NotLeaderError,
    OffsetOutOfRangeError,
    PermissionDeniedError,
    from_rpc_error,
)

CALL_DEADLINE_S = 10.0
_values = (f"value-{i}".encode() for i in itertools.count())


def log_stub(
    cluster: StorageCluster, node: StorageNode, identity: str = "root"
) -> log_pb2_grpc.LogStub:
    return log_pb2_grpc.LogStub(cluster.channel(node, identity))


def produce(stub: log_pb2_grpc.LogStub, value: bytes) -> int:
    reply = stub.Produce(pb.ProduceRequest(record=pb.Record(value=value)), timeout=CALL_DEADLINE_S)
    return int(reply.offset)


def batch_request(values: list[bytes]) -> pb.ProduceBatchRequest:
    return pb.ProduceBatchRequest(records=[pb.Record(value=v) for v in values])


def consume_from(stub: log_pb2_grpc.LogStub, offset: int, count: int) -> list[pb.Record]:
    """`count` records from `offset` through ConsumeStream (which waits for them to commit)."""
    call = stub.ConsumeStream(pb.ConsumeRequest(offset=offset), timeout=CALL_DEADLINE_S)
    records = [response.record for response in itertools.islice(call, count)]
    call.cancel()
    return records


def rpc_error(call: object) -> grpc.RpcError:
    assert isinstance(call, grpc.RpcError), call
    return call


def test_produce_on_leader_then_consume_on_every_node(storage_cluster: StorageCluster) -> None:
    leader = storage_cluster.leader()
    values = [next(_values) for _ in range(5)]
    offsets = [produce(log_stub(storage_cluster, leader), v) for v in values]
    assert offsets == list(range(offsets[0], offsets[0] + 5))
    for node in storage_cluster.nodes:
        records = consume_from(log_stub(storage_cluster, node), offsets[0], 5)
        assert [r.value for r in records] == values
        assert [r.offset for r in records] == offsets
        # Once a node streamed a record it has committed it: unary Consume sees it too.
        reply = log_stub(storage_cluster, node).Consume(
            pb.ConsumeRequest(offset=offsets[-1]), timeout=CALL_DEADLINE_S
        )
        assert reply.record.value == values[-1]
        assert reply.record.append_time.seconds > 0


def test_consume_stream_follows_the_tail(storage_cluster: StorageCluster) -> None:
    leader = storage_cluster.leader()
    follower = storage_cluster.followers()[0]
    next_offset = produce(log_stub(storage_cluster, leader), next(_values)) + 1
    call = log_stub(storage_cluster, follower).ConsumeStream(
        pb.ConsumeRequest(offset=next_offset), timeout=CALL_DEADLINE_S
    )
    later = [next(_values) for _ in range(3)]
    for value in later:  # produced after the stream reached the end of the log
        produce(log_stub(storage_cluster, leader), value)
    received = [next(call).record for _ in later]
    call.cancel()
    assert [r.value for r in received] == later
    assert [r.offset for r in received] == [next_offset, next_offset + 1, next_offset + 2]


def test_produce_stream_answers_in_order_and_ends_ok_on_half_close(
    storage_cluster: StorageCluster,
) -> None:
    stub = log_stub(storage_cluster, storage_cluster.leader())
    values = [next(_values) for _ in range(50)]
    requests: Iterator[pb.ProduceRequest] = (
        pb.ProduceRequest(record=pb.Record(value=v)) for v in values
    )
    call = stub.ProduceStream(requests, timeout=CALL_DEADLINE_S)
    offsets = [r.offset for r in call]
    assert call.code() == grpc.StatusCode.OK
    assert offsets == list(range(offsets[0], offsets[0] + len(values)))
    assert [r.value for r in consume_from(stub, offsets[0], len(values))] == values


def test_produce_batch_gets_consecutive_offsets(storage_cluster: StorageCluster) -> None:
    stub = log_stub(storage_cluster, storage_cluster.leader())
    values = [next(_values) for _ in range(20)]
    reply = stub.ProduceBatch(
        batch_request(values),
        timeout=CALL_DEADLINE_S,
    )
    assert reply.count == 20
    records = consume_from(stub, reply.first_offset, 20)
    assert [r.value for r in records] == values
    assert [r.offset for r in records] == list(range(reply.first_offset, reply.first_offset + 20))
    # A batch is one Raft entry; its records are still read one by one at their offsets.
    middle = reply.first_offset + 7
    assert [r.value for r in consume_from(stub, middle, 13)] == values[7:]
    single = stub.Consume(pb.ConsumeRequest(offset=middle), timeout=CALL_DEADLINE_S).record
    assert (single.offset, single.value) == (middle, values[7])


def test_empty_or_oversized_batch_is_invalid_argument(storage_cluster: StorageCluster) -> None:
    stub = log_stub(storage_cluster, storage_cluster.leader())
    for records, why in [
        ([], "a batch holds 1 to 10000 records, this one 0: split it"),
        ([pb.Record(value=b"x" * (1 << 20))] * 17, "at most 16777216 bytes of values"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            stub.ProduceBatch(pb.ProduceBatchRequest(records=records), timeout=CALL_DEADLINE_S)
        assert rpc_error(caught.value).code() == grpc.StatusCode.INVALID_ARGUMENT
        assert why in (rpc_error(caught.value).details() or "")


def test_produce_batch_stream_answers_each_batch_in_order_and_ends_ok(
    storage_cluster: StorageCluster,
) -> None:
    stub = log_stub(storage_cluster, storage_cluster.leader())
    batches = [[next(_values) for _ in range(size)] for size in (3, 1, 40, 7, 12)]
    # All requests are sent before the first answer is read: they are in flight together.
    call = stub.ProduceBatchStream(
        iter([batch_request(b) for b in batches]), timeout=CALL_DEADLINE_S
    )
    replies = list(call)
    assert call.code() == grpc.StatusCode.OK
    assert [r.count for r in replies] == [len(b) for b in batches]
    first = replies[0].first_offset
    expected_firsts = list(itertools.accumulate((len(b) for b in batches[:-1]), initial=first))
    assert [r.first_offset for r in replies] == expected_firsts  # dense, in request order
    flat = [v for b in batches for v in b]
    assert [r.value for r in consume_from(stub, first, len(flat))] == flat


def test_produce_batch_stream_ends_at_a_bad_batch_after_answering_the_earlier_ones(
    storage_cluster: StorageCluster,
) -> None:
    stub = log_stub(storage_cluster, storage_cluster.leader())
    good = [next(_values) for _ in range(4)]
    never = [next(_values) for _ in range(2)]
    call = stub.ProduceBatchStream(
        iter([batch_request(good), pb.ProduceBatchRequest(), batch_request(never)]),
        timeout=CALL_DEADLINE_S,
    )
    replies = []
    with pytest.raises(grpc.RpcError) as caught:
        replies.extend(call)
    error = rpc_error(caught.value)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "a batch holds 1 to 10000 records, this one 0" in (error.details() or "")
    assert [(r.count) for r in replies] == [4]
    assert [r.value for r in consume_from(stub, replies[0].first_offset, 4)] == good
    # The batch after the bad one was not appended: the next record goes right after `good`.
    assert produce(stub, next(_values)) == replies[0].first_offset + 4


def test_produce_batch_stream_on_follower_fails_not_leader(
    storage_cluster: StorageCluster,
) -> None:
    leader = storage_cluster.leader()
    stub = log_stub(storage_cluster, storage_cluster.followers()[0])
    call = stub.ProduceBatchStream(iter([batch_request([b"misrouted"])]), timeout=CALL_DEADLINE_S)
    with pytest.raises(grpc.RpcError) as caught:
        list(call)
    mapped = from_rpc_error(rpc_error(caught.value), write=True)
    assert isinstance(mapped, NotLeaderError)
    assert mapped.leader_addr == leader.address


def test_batched_consume_packs_many_records_per_message(storage_cluster: StorageCluster) -> None:
    stub = log_stub(storage_cluster, storage_cluster.leader())
    values = [next(_values) for _ in range(25)]
    first = stub.ProduceBatch(
        batch_request(values),
        timeout=CALL_DEADLINE_S,
    ).first_offset
    follower = storage_cluster.followers()[0]
    call = log_stub(storage_cluster, follower).ConsumeStream(
        pb.ConsumeRequest(offset=first, max_batch_records=10), timeout=CALL_DEADLINE_S
    )
    got: list[pb.Record] = []
    for message in call:
        assert not message.HasField("record"), "batched messages fill `records` only"
        assert 1 <= len(message.records) <= 10
        got.extend(message.records)
        if len(got) >= 25:
            break
    call.cancel()
    assert [r.value for r in got[:25]] == values


def test_produce_on_follower_fails_not_leader_with_leader_address(
    storage_cluster: StorageCluster,
) -> None:
    leader = storage_cluster.leader()
    follower = storage_cluster.followers()[0]
    with pytest.raises(grpc.RpcError) as caught:
        produce(log_stub(storage_cluster, follower), b"misrouted")
    error = rpc_error(caught.value)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    mapped = from_rpc_error(error, write=True)
    assert isinstance(mapped, NotLeaderError)
    assert mapped.leader_id == leader.node_id
    assert mapped.leader_addr == leader.address


def test_consume_past_the_end_is_out_of_range(storage_cluster: StorageCluster) -> None:
    stub = log_stub(storage_cluster, storage_cluster.leader())
    end = produce(stub, next(_values)) + 1
    with pytest.raises(grpc.RpcError) as caught:
        stub.Consume(pb.ConsumeRequest(offset=end + 1000), timeout=CALL_DEADLINE_S)
    error = rpc_error(caught.value)
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE
    mapped = from_rpc_error(error)
    assert isinstance(mapped, OffsetOutOfRangeError)
    assert mapped.offset == end + 1000
    assert mapped.next_offset is not None and mapped.next_offset >= end


def test_oversized_record_is_invalid_argument(storage_cluster: StorageCluster) -> None:
    stub = log_stub(storage_cluster, storage_cluster.leader())
    with pytest.raises(grpc.RpcError) as caught:
        produce(stub, b"x" * (2 << 20))
    assert rpc_error(caught.value).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_get_servers_lists_every_node_with_one_leader(storage_cluster: StorageCluster) -> None:
    leader = storage_cluster.leader()
    for node in storage_cluster.nodes:
        reply = log_stub(storage_cluster, node).GetServers(
            pb.GetServersRequest(), timeout=CALL_DEADLINE_S
        )
        servers = {s.id: s for s in reply.servers}
        assert set(servers) == {n.node_id for n in storage_cluster.nodes}
        assert [s.id for s in reply.servers if s.is_leader] == [leader.node_id]
        assert servers[leader.node_id].role == "leader"
        assert servers[leader.node_id].lag == 0
        assert {servers[n.node_id].rpc_addr for n in storage_cluster.nodes} == {
            n.address for n in storage_cluster.nodes
        }
        assert all(s.role in ("leader", "follower") for s in reply.servers)


def test_health_is_serving_on_every_node(storage_cluster: StorageCluster) -> None:
    storage_cluster.leader()
    for node in storage_cluster.nodes:
        # The typeshed stub of HealthStub lists no methods.
        stub: Any = health_pb2_grpc.HealthStub(storage_cluster.channel(node))
        reply = stub.Check(
            health_pb2.HealthCheckRequest(service="log.v1.Log"), timeout=CALL_DEADLINE_S
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_every_service(storage_cluster: StorageCluster) -> None:
    # The typeshed stub leaves the method untyped.
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(
        storage_cluster.channel(storage_cluster.nodes[1])
    )
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = list(stub.ServerReflectionInfo(iter([request]), timeout=CALL_DEADLINE_S))
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"log.v1.Log", "logmesh.v1.Raft", "logmesh.v1.Admin", "grpc.health.v1.Health"} <= names


def test_admin_status_refuses_a_client_identity(storage_cluster: StorageCluster) -> None:
    node = storage_cluster.nodes[0]
    admin = admin_pb2_grpc.AdminStub(storage_cluster.channel(node, "nobody"))
    with pytest.raises(grpc.RpcError) as caught:
        admin.Status(admin_pb2.StatusRequest(), timeout=CALL_DEADLINE_S)
    assert isinstance(from_rpc_error(rpc_error(caught.value)), PermissionDeniedError)
    operator = admin_pb2_grpc.AdminStub(storage_cluster.channel(node, "operator"))
    assert operator.Status(admin_pb2.StatusRequest(), timeout=CALL_DEADLINE_S).id == node.node_id


def test_raft_api_refuses_a_non_storage_identity(storage_cluster: StorageCluster) -> None:
    raft = raft_pb2_grpc.RaftStub(storage_cluster.channel(storage_cluster.nodes[0], "root"))
    with pytest.raises(grpc.RpcError) as caught:
        raft.Messages(iter([raft_pb2.RaftBatch()]), timeout=CALL_DEADLINE_S)
    assert rpc_error(caught.value).code() == grpc.StatusCode.PERMISSION_DENIED


def test_raft_stream_from_another_cluster_is_refused(storage_cluster: StorageCluster) -> None:
    node = storage_cluster.nodes[0]
    header = raft_pb2.Header(
        cluster_id="elsewhere", from_id="storage-1", to_id=node.node_id, protocol_version=1
    )
    raft = raft_pb2_grpc.RaftStub(storage_cluster.channel(node, "storage-1"))
    with pytest.raises(grpc.RpcError) as caught:
        raft.Messages(iter([raft_pb2.RaftBatch(header=header)]), timeout=CALL_DEADLINE_S)
    error = rpc_error(caught.value)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "elsewhere" in (error.details() or "")


def test_client_without_certificate_is_refused(storage_cluster: StorageCluster) -> None:
    assert storage_cluster.certs_dir is not None
    ca = (storage_cluster.certs_dir / "ca.pem").read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    assert_refused(storage_cluster.nodes[0], credentials)


def test_client_with_certificate_of_another_ca_is_refused(
    storage_cluster: StorageCluster, tmp_path: Path
) -> None:
    assert storage_cluster.certs_dir is not None
    init_certs(tmp_path / "foreign", instances=(), clients=("root",))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(storage_cluster.certs_dir / "ca.pem").read_bytes(),
        private_key=(tmp_path / "foreign" / "root.key").read_bytes(),
        certificate_chain=(tmp_path / "foreign" / "root.pem").read_bytes(),
    )
    assert_refused(storage_cluster.nodes[0], credentials)


def assert_refused(node: StorageNode, credentials: grpc.ChannelCredentials) -> None:
    """The TLS handshake fails, so the call never reaches a servicer."""
    with (
        grpc.secure_channel(node.address, credentials) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        log_pb2_grpc.LogStub(channel).GetServers(pb.GetServersRequest(), timeout=5.0)
    assert rpc_error(caught.value).code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNAUTHENTICATED,
    )
