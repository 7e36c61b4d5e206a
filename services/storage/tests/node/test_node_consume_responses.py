"""The consumers' stream messages built from a RecordBlock (log_servicer._responses)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from logmesh_storage.log import RecordBlock
from logmesh_storage.node.log_servicer import _responses

from logmesh._gen.log.v1 import log_pb2 as pb

BLOCK = RecordBlock(
    offsets=[7, 8, 9],
    terms=[2, 2, 3],
    timestamps_ms=[1_700_000_000_123, 1_700_000_001_000, 999],
    payloads=[b"a", b"", b"c" * 300],
)


def expected() -> list[pb.Record]:
    records = []
    for value, offset, term, ms in zip(
        BLOCK.payloads, BLOCK.offsets, BLOCK.terms, BLOCK.timestamps_ms, strict=True
    ):
        append_time = Timestamp()
        append_time.FromMilliseconds(ms)
        records.append(pb.Record(value=value, offset=offset, term=term, append_time=append_time))
    return records


def test_batched_messages_hold_up_to_the_batch_in_order() -> None:
    responses = _responses(BLOCK, 2)
    assert [len(r.records) for r in responses] == [2, 1]
    assert [rec for r in responses for rec in r.records] == expected()
    assert not any(r.HasField("record") for r in responses)


def test_batch_zero_is_the_books_one_record_per_message() -> None:
    responses = _responses(BLOCK, 0)
    assert [r.record for r in responses] == expected()
    assert not any(r.records for r in responses)
