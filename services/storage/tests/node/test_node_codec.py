"""Raft messages <-> protobuf: every kind round-trips exactly; bad input is refused clearly."""

from __future__ import annotations

import pytest
from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.log.store import encode_entry
from logmesh_storage.node.codec import (
    PROTOCOL_VERSION,
    check_header,
    decode_message,
    decode_peers,
    encode_message,
    make_header,
)
from logmesh_storage.node.errors import PeerRefusedError
from logmesh_storage.node.peers import PeerAddress
from logmesh_storage.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from logmesh_storage.raft.types import Configuration, SnapshotMeta

from logmesh._gen.logmesh.v1 import raft_pb2 as pb

ENTRIES = (
    Entry(5, 2, EntryType.DATA, 3, 1_700_000_000_000, b"record"),
    Entry(6, 2, EntryType.NOOP, 4, 1_700_000_000_001, b""),
    Entry(
        7,
        3,
        EntryType.CONFIG,
        4,
        1_700_000_000_002,
        Configuration(frozenset({"storage-0"}), frozenset({"storage-1"})).encode(),
    ),
)

MESSAGES: list[Message] = [
    AppendEntries(3, "storage-0", "storage-1", 4, 2, ENTRIES, 5),
    AppendEntries(3, "storage-0", "storage-1", 4, 2, (), 5),
    AppendEntriesResponse(3, "storage-1", "storage-0", 9, True, 4, 2),
    RequestVote(4, "storage-2", "storage-0", 9, 3, pre_vote=True, transfer=True),
    RequestVoteResponse(4, "storage-0", "storage-2", True, pre_vote=True),
    Heartbeat(3, "storage-0", "storage-1", 8, b"ctx"),
    HeartbeatResponse(3, "storage-1", "storage-0", b"ctx"),
    InstallSnapshot(
        3,
        "storage-0",
        "storage-2",
        SnapshotMeta(
            100,
            3,
            Configuration(frozenset({"storage-0", "storage-1"}), frozenset({"storage-2"})),
            77,
        ),
    ),
    TimeoutNow(3, "storage-0", "storage-1"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_kind_round_trips(message: Message) -> None:
    wire = pb.RaftMessage.FromString(encode_message(message).SerializeToString())
    assert decode_message(wire) == message


def test_entries_travel_as_log_frames_encoded_once_per_entry() -> None:
    frames: dict[int, bytes] = {}
    first = encode_message(MESSAGES[0], frames)
    second = encode_message(AppendEntries(3, "storage-0", "storage-2", 4, 2, ENTRIES, 5), frames)
    assert list(first.append_entries.entries) == [encode_entry(e) for e in ENTRIES]
    assert list(second.append_entries.entries) == list(first.append_entries.entries)
    assert len(frames) == len(ENTRIES)


def test_a_damaged_entry_frame_is_refused() -> None:
    wire = encode_message(MESSAGES[0])
    frame = bytearray(wire.append_entries.entries[0])
    frame[-1] ^= 0xFF
    wire.append_entries.entries[0] = bytes(frame)
    with pytest.raises(PeerRefusedError, match="does not decode"):
        decode_message(wire)


def test_a_message_without_body_is_refused() -> None:
    with pytest.raises(PeerRefusedError, match="no body"):
        decode_message(pb.RaftMessage(term=1, from_id="storage-0", to_id="storage-1"))


def header(**changes: object) -> pb.Header:
    h = make_header("c1", "storage-0", "storage-1", [PeerAddress("storage-0", "h:1", 7)])
    for name, value in changes.items():
        setattr(h, name, value)
    return h


def test_a_matching_header_passes_and_carries_the_peer_table() -> None:
    h = header()
    check_header(h, "c1", "storage-1", "storage-0")
    assert h.protocol_version == PROTOCOL_VERSION
    assert decode_peers(h) == [PeerAddress("storage-0", "h:1", 7)]


@pytest.mark.parametrize(
    ("h", "caller", "message"),
    [
        (header(cluster_id="c2"), "storage-0", "belongs to cluster 'c2'"),
        (header(protocol_version=PROTOCOL_VERSION + 1), "storage-0", "protocol version"),
        (header(to_id="storage-2"), "storage-0", "meant to reach 'storage-2'"),
        (header(), "storage-2", "certificate 'storage-2' claims to be 'storage-0'"),
    ],
)
def test_mismatched_headers_are_refused(h: pb.Header, caller: str, message: str) -> None:
    with pytest.raises(PeerRefusedError, match=message):
        check_header(h, "c1", "storage-1", caller)
