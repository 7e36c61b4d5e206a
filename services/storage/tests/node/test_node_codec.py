"""Raft messages <-> protobuf: every kind round-trips exactly; bad input is refused clearly."""

from __future__ import annotations

import pytest
from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.log.store import encode_entry
from logmesh_storage.node.codec import (
    PROTOCOL_VERSION,
    FrameBlocks,
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


def test_entries_travel_as_log_frames_joined_once_for_all_followers() -> None:
    blocks: FrameBlocks = {}
    first = encode_message(MESSAGES[0], blocks)
    second = encode_message(AppendEntries(3, "storage-0", "storage-2", 4, 2, ENTRIES, 5), blocks)
    assert first.append_entries.frames == b"".join(encode_entry(e) for e in ENTRIES)
    assert first.append_entries.frame_count == len(ENTRIES)
    assert not first.append_entries.entries  # one field per message, not one per entry
    assert second.append_entries.frames == first.append_entries.frames
    assert len(blocks) == 1  # encoded once, kept for this node's own append
    [(entries, batch)] = blocks.values()
    assert entries == ENTRIES
    assert batch.data == first.append_entries.frames


def test_entries_as_one_field_per_frame_still_decode() -> None:
    """The form older senders use: repeated `entries`, one frame each."""
    wire = encode_message(MESSAGES[0])
    a = wire.append_entries
    a.entries.extend(encode_entry(e) for e in ENTRIES)
    a.ClearField("frames")
    a.ClearField("frame_count")
    assert decode_message(wire) == MESSAGES[0]


def test_a_damaged_entry_frame_is_refused() -> None:
    wire = encode_message(MESSAGES[0])
    frames = bytearray(wire.append_entries.frames)
    frames[-1] ^= 0xFF
    wire.append_entries.frames = bytes(frames)
    with pytest.raises(PeerRefusedError, match="does not decode"):
        decode_message(wire)


@pytest.mark.parametrize("count_change", [-1, +1, -len(ENTRIES)])
def test_a_frame_count_that_does_not_match_the_frames_is_refused(count_change: int) -> None:
    wire = encode_message(MESSAGES[0])
    wire.append_entries.frame_count += count_change
    with pytest.raises(PeerRefusedError, match="does not decode"):
        decode_message(wire)


def test_frames_in_both_forms_are_refused() -> None:
    wire = encode_message(MESSAGES[0])
    wire.append_entries.entries.append(encode_entry(ENTRIES[0]))
    with pytest.raises(PeerRefusedError, match="both forms"):
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
