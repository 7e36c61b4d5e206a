"""Raft messages <-> proto/logmesh/v1/raft.proto, and the batch header checks.

Entries travel as the log engine's frame bytes, joined in one field per AppendEntries
(encode_batch / decode_frames): the bytes the leader ships are the bytes the follower stores,
each frame's CRC checked on decode (DESIGN §9). This module does no I/O and knows no grpc; a
peer that breaks the protocol gets PeerRefusedError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter

from logmesh._gen.logmesh.v1 import raft_pb2 as pb

from ..log.batch import EncodedBatch, encode_batch
from ..log.entry import Entry, EntryType, records_damage
from ..log.store import FRAME_HEADER_BYTES, FrameDamaged, decode_frames
from ..raft.messages import (
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
from ..raft.types import Configuration, SnapshotMeta
from .errors import PeerRefusedError
from .frames import FrameCache
from .peers import PeerAddress

PROTOCOL_VERSION = 1


def encode_message(msg: Message, blocks: FrameBlocks | None = None) -> pb.RaftMessage:
    """The wire form of `msg`. `blocks` lets the caller encode a run of entries once for all
    the messages that carry it (the same AppendEntries goes to every follower) and keep the
    encoded batches (for this node's own append); the caller keeps the entries alive
    meanwhile."""
    out = pb.RaftMessage(term=msg.term, from_id=msg.from_id, to_id=msg.to_id)
    match msg:
        case AppendEntries():
            a = out.append_entries
            a.prev_index, a.prev_term = msg.prev_index, msg.prev_term
            a.commit_index = msg.commit_index
            if msg.entries:
                # One bytes field per message: a repeated field costs protobuf work per
                # entry on both sides (docs/raft.md, "Performance notes").
                a.frames = _encoded(msg.entries, blocks).data
                a.frame_count = len(msg.entries)
        case AppendEntriesResponse():
            r = out.append_entries_response
            r.index, r.reject = msg.index, msg.reject
            r.hint_index, r.hint_term = msg.hint_index, msg.hint_term
        case RequestVote():
            v = out.request_vote
            v.last_index, v.last_term = msg.last_index, msg.last_term
            v.pre_vote, v.transfer = msg.pre_vote, msg.transfer
        case RequestVoteResponse():
            out.request_vote_response.granted = msg.granted
            out.request_vote_response.pre_vote = msg.pre_vote
        case Heartbeat():
            out.heartbeat.commit_index = msg.commit_index
            out.heartbeat.context = msg.context
        case HeartbeatResponse():
            out.heartbeat_response.context = msg.context
        case InstallSnapshot():
            out.install_snapshot.snapshot.CopyFrom(encode_snapshot(msg.snapshot))
        case TimeoutNow():
            out.timeout_now.SetInParent()
    return out


# Encoded batches by (id of the first entry, id of the last, how many), with their entries:
# the runs of entries encoded during one Transport.send, whose messages keep them alive.
FrameBlocks = dict[tuple[int, int, int], tuple[Sequence[Entry], EncodedBatch]]


def _encoded(entries: Sequence[Entry], blocks: FrameBlocks | None) -> EncodedBatch:
    key = (id(entries[0]), id(entries[-1]), len(entries))
    if blocks is not None and (block := blocks.get(key)) is not None:
        return block[1]
    batch = encode_batch(entries)
    if blocks is not None:
        blocks[key] = (entries, batch)
    return batch


def decode_entries(
    frames: Sequence[bytes], remember: FrameCache | None = None
) -> tuple[Entry, ...]:
    """The entries of received frames, one bytes object per frame (the `entries` form of
    AppendEntries); see decode_frame_block."""
    if not frames:
        return ()
    return decode_frame_block(b"".join(frames), len(frames), remember)


def decode_frame_block(
    data: bytes, count: int, remember: FrameCache | None = None
) -> tuple[Entry, ...]:
    """The entries of `count` frames joined in `data`, CRC-checked in one pass (a follower
    decodes every entry it gets: a call per frame cost twice as much). Raises FrameDamaged
    for a damaged frame, trailing bytes, or a valid CRC over impossible values.
    `remember` keeps them as one EncodedBatch, for the log to write as received."""
    if not count:
        if data:
            raise FrameDamaged(f"{len(data)} bytes of frames arrived with a frame count of 0")
        return ()
    decoded = decode_frames(data, count)
    if isinstance(decoded, tuple):
        at, damage = decoded
        raise FrameDamaged(f"not a valid log frame at byte {at}: {damage.value}")
    # Checked and indexed with loops in C (map): a follower decodes every entry it gets.
    payload_sizes = list(map(len, map(_payload, decoded)))
    frame_sizes = [FRAME_HEADER_BYTES + n for n in payload_sizes]
    if sum(frame_sizes) != len(data):
        raise FrameDamaged(f"{len(data) - sum(frame_sizes)} bytes follow the last frame")
    first, terms = decoded[0], list(map(_term, decoded))
    if first.index < 1 or min(terms) < 1:
        raise FrameDamaged(f"the frames hold an impossible entry: {first!r}")
    if list(map(_index, decoded)) != list(range(first.index, first.index + count)):
        raise FrameDamaged(f"the frames from index {first.index} are not contiguous")
    if terms != sorted(terms):  # linear on sorted input, and in C
        raise FrameDamaged(f"the frames from index {first.index} go back in term")
    types = list(map(_type, decoded))
    if EntryType.NOOP in types and any(e.payload for e in decoded if e.type is EntryType.NOOP):
        raise FrameDamaged("the frames hold an impossible entry: a NOOP with a payload")
    if EntryType.RECORDS in types:
        for entry in decoded:
            if entry.type is EntryType.RECORDS and (why := records_damage(entry.payload)):
                raise FrameDamaged(f"the frames hold a bad RECORDS entry: {why}")
    if remember is not None:
        timestamps = list(map(_timestamp_ms, decoded))
        offsets = list(map(_offset, decoded))
        counts = list(map(_record_count, decoded))
        batch = EncodedBatch(
            data, first.index, frame_sizes, terms, offsets, timestamps, types, counts
        )
        remember.put_batch(decoded, batch)
    return tuple(decoded)


_index, _term, _offset, _timestamp_ms, _type, _payload, _record_count = (
    attrgetter(name)
    for name in ("index", "term", "offset", "timestamp_ms", "type", "payload", "record_count")
)


def decode_message(raw: pb.RaftMessage, frames: FrameCache | None = None) -> Message:
    """The core's message for `raw`; PeerRefusedError if it is empty or has a bad entry.
    `frames` keeps the frames of received entries (see decode_entries)."""
    term, from_id, to_id = raw.term, raw.from_id, raw.to_id
    kind = raw.WhichOneof("body")
    if kind == "append_entries":
        a = raw.append_entries
        try:
            if a.entries:
                if a.frames or a.frame_count:
                    raise FrameDamaged("the message carries frames in both forms")
                entries = decode_entries(a.entries, frames)
            else:
                entries = decode_frame_block(a.frames, a.frame_count, frames)
        except ValueError as e:  # FrameDamaged, or a frame holding an impossible entry
            raise PeerRefusedError(
                f"{from_id} sent an entry frame that does not decode ({e}): the frame was "
                "damaged in transit or the peer runs an incompatible log format"
            ) from e
        return AppendEntries(
            term, from_id, to_id, a.prev_index, a.prev_term, entries, a.commit_index
        )
    if kind == "append_entries_response":
        r = raw.append_entries_response
        return AppendEntriesResponse(
            term, from_id, to_id, r.index, r.reject, r.hint_index, r.hint_term
        )
    if kind == "request_vote":
        v = raw.request_vote
        return RequestVote(term, from_id, to_id, v.last_index, v.last_term, v.pre_vote, v.transfer)
    if kind == "request_vote_response":
        g = raw.request_vote_response
        return RequestVoteResponse(term, from_id, to_id, g.granted, g.pre_vote)
    if kind == "heartbeat":
        return Heartbeat(term, from_id, to_id, raw.heartbeat.commit_index, raw.heartbeat.context)
    if kind == "heartbeat_response":
        return HeartbeatResponse(term, from_id, to_id, raw.heartbeat_response.context)
    if kind == "install_snapshot":
        return InstallSnapshot(term, from_id, to_id, decode_snapshot(raw.install_snapshot.snapshot))
    if kind == "timeout_now":
        return TimeoutNow(term, from_id, to_id)
    raise PeerRefusedError(f"{from_id} sent a Raft message with no body: upgrade that node")


def encode_snapshot(meta: SnapshotMeta) -> pb.SnapshotMeta:
    return pb.SnapshotMeta(
        index=meta.index,
        term=meta.term,
        voters=sorted(meta.configuration.voters),
        learners=sorted(meta.configuration.learners),
        next_offset=meta.next_offset,
    )


def decode_snapshot(raw: pb.SnapshotMeta) -> SnapshotMeta:
    configuration = Configuration(voters=frozenset(raw.voters), learners=frozenset(raw.learners))
    return SnapshotMeta(raw.index, raw.term, configuration, raw.next_offset)


def make_header(
    cluster_id: str, from_id: str, to_id: str, peers: Iterable[PeerAddress]
) -> pb.Header:
    return pb.Header(
        cluster_id=cluster_id,
        from_id=from_id,
        to_id=to_id,
        protocol_version=PROTOCOL_VERSION,
        peers=[pb.PeerAddress(id=p.id, address=p.address, generation=p.generation) for p in peers],
    )


def check_header(header: pb.Header, cluster_id: str, node_id: str, caller: str | None) -> None:
    """Refuse a batch from another cluster, protocol version or certificate, or for another node.

    `caller` is the TLS identity of the stream: a node may only speak for itself.
    """
    if header.protocol_version != PROTOCOL_VERSION:
        raise PeerRefusedError(
            f"{header.from_id or 'a peer'} speaks Raft protocol version "
            f"{header.protocol_version}, this node speaks {PROTOCOL_VERSION}: run the same "
            "logmesh version on every storage node"
        )
    if header.cluster_id != cluster_id:
        raise PeerRefusedError(
            f"{header.from_id} belongs to cluster {header.cluster_id!r}, this node to "
            f"{cluster_id!r}: check --cluster-id and --join on both nodes"
        )
    if header.to_id != node_id:
        raise PeerRefusedError(
            f"{header.from_id} meant to reach {header.to_id!r} but reached {node_id!r}: its "
            "address table is stale (a node moved); it will learn the new address"
        )
    if caller != header.from_id:
        raise PeerRefusedError(
            f"a peer with certificate {caller!r} claims to be {header.from_id!r}: each node must "
            "use the certificate named after its --id"
        )


def decode_peers(header: pb.Header) -> list[PeerAddress]:
    return [PeerAddress(p.id, p.address, p.generation) for p in header.peers]
