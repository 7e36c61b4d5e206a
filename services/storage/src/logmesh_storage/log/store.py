"""Frames and segment headers: the bytes of a segment file (docs/log-format.md).

A frame is `crc u32 | length u32 | index u64 | term u64 | offset u64 | timestamp_ms i64
| type u8 | payload`, little-endian; `length` counts the bytes after itself and the
CRC32C covers everything after the crc field: length, header and payload.
`encode_entry`/`decode_entry` are public: the node ships these exact bytes over the
network. No file access here: callers pass buffers.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import google_crc32c

from .entry import (
    Entry,
    EntryType,
    make_entry,
    record_count,
    records_damage,
)

_CRC = struct.Struct("<I")
_PREFIX = struct.Struct("<II")  # crc, length
_BODY_HEAD = struct.Struct("<IQQQqB")  # length, index, term, offset, timestamp_ms, type
_FRAME_HEAD = struct.Struct("<IIQQQqB")  # crc + _BODY_HEAD, for decoding in one call
_CRC_AND_OFFSET = struct.Struct("<I20xQ")  # crc, and the offset 24 bytes into the frame
_ENTRY_HEADER_BYTES = _BODY_HEAD.size - 4  # what `length` counts besides the payload
FRAME_PREFIX_BYTES = _PREFIX.size
FRAME_HEADER_BYTES = _FRAME_HEAD.size
# A sanity limit: a length above it is garbage, not a frame.
FRAME_BODY_BYTES_MAX = 64 * 1024 * 1024
_ENTRY_TYPES = tuple(sorted(EntryType, key=int))
_RECORDS = int(EntryType.RECORDS)

SEGMENT_MAGIC = b"LMSEGv01"
SEGMENT_FORMAT_VERSION = 1
_SEGMENT_HEADER = struct.Struct("<8sHHQQQQ")
SEGMENT_HEADER_BYTES = _SEGMENT_HEADER.size + _CRC.size


class FrameDamaged(ValueError):  # noqa: N818 (names from the API contract)
    """decode_entry was given bytes that are not exactly one valid frame."""


def frame_parts(entry: Entry) -> tuple[bytes, bytes]:
    """The frame as (crc+length+header, payload), so a batch joins without copying payloads."""
    payload = entry.payload
    body_head = _BODY_HEAD.pack(
        _ENTRY_HEADER_BYTES + len(payload),
        entry.index,
        entry.term,
        entry.offset,
        entry.timestamp_ms,
        entry.type,
    )
    crc = google_crc32c.extend(google_crc32c.value(body_head), payload)
    return _CRC.pack(crc) + body_head, payload


def encode_entry(entry: Entry) -> bytes:
    """The frame bytes of `entry`."""
    head, payload = frame_parts(entry)
    return head + payload


class Damage(Enum):
    """Why no frame could be read at a position."""

    SHORT = "the file ends inside a frame"
    BAD_LENGTH = "the frame length is impossible"
    BAD_CRC = "the frame checksum does not match"
    BAD_TYPE = "the frame has a valid checksum but an unknown entry type"
    BAD_RECORDS = "the frame has a valid checksum but its records do not add up"


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What the index needs of a frame, without its payload."""

    position: int
    frame_bytes: int
    index: int
    term: int
    offset: int
    timestamp_ms: int
    type: int
    count: int  # client records in the entry (Entry.record_count)


def check_frame(buf: bytes, position: int) -> FrameMeta | Damage:
    """The frame at `position` of `buf`, checked, or why there is none."""
    if len(buf) - position < FRAME_HEADER_BYTES:
        return Damage.SHORT
    crc, length, index, term, offset, timestamp_ms, type_ = _FRAME_HEAD.unpack_from(buf, position)
    if length < _ENTRY_HEADER_BYTES or length > FRAME_BODY_BYTES_MAX:
        return Damage.BAD_LENGTH
    end = position + FRAME_PREFIX_BYTES + length
    if end > len(buf):
        return Damage.SHORT
    if google_crc32c.value(buf[position + _CRC.size : end]) != crc:
        return Damage.BAD_CRC
    if type_ >= len(_ENTRY_TYPES):
        return Damage.BAD_TYPE
    if type_ == _RECORDS and records_damage(buf[position + FRAME_HEADER_BYTES : end]):
        return Damage.BAD_RECORDS
    count = record_count(
        type_, buf[position + FRAME_HEADER_BYTES : position + FRAME_HEADER_BYTES + 4]
    )
    return FrameMeta(position, end - position, index, term, offset, timestamp_ms, type_, count)


def next_frame_position(buf: bytes, position: int) -> int | None:
    """Where the frame after a damaged one would start, if its length field is usable."""
    if len(buf) - position < FRAME_PREFIX_BYTES:
        return None
    _, length = _PREFIX.unpack_from(buf, position)
    if length < _ENTRY_HEADER_BYTES or length > FRAME_BODY_BYTES_MAX:
        return None
    return position + FRAME_PREFIX_BYTES + int(length)


def decode_frames(buf: bytes, count: int) -> list[Entry] | tuple[int, Damage]:
    """The entries of `count` consecutive frames at the start of `buf`, CRC-checked,
    or (position, damage) of the first bad one. The read path: one unpack per frame."""
    entries = []
    at = 0
    size = len(buf)
    value = google_crc32c.value
    for _ in range(count):
        if size - at < FRAME_HEADER_BYTES:
            return at, Damage.SHORT
        crc, length, index, term, offset, timestamp_ms, type_ = _FRAME_HEAD.unpack_from(buf, at)
        end = at + FRAME_PREFIX_BYTES + length
        if length < _ENTRY_HEADER_BYTES or length > FRAME_BODY_BYTES_MAX:
            return at, Damage.BAD_LENGTH
        if end > size:
            return at, Damage.SHORT
        if value(buf[at + _CRC.size : end]) != crc:
            return at, Damage.BAD_CRC
        if type_ >= len(_ENTRY_TYPES):
            return at, Damage.BAD_TYPE
        payload = buf[at + FRAME_HEADER_BYTES : end]
        entries.append(make_entry(index, term, _ENTRY_TYPES[type_], offset, timestamp_ms, payload))
        at = end
    return entries


def frame_payloads(
    buf: bytes,
    base: int,
    positions: Sequence[int],
    sizes: Sequence[int],
    offsets: Sequence[int],
) -> list[bytes] | int:
    """The payloads of the frames at file `positions` with `sizes` in `buf` (the file's bytes
    from position `base`), each CRC-checked and holding the offset `offsets` says, or the
    file position of the first that is not. The consumers' read path: the index supplies the
    rest of each frame's header, so a record costs one unpack, one checksum and one slice."""
    payloads: list[bytes] = []
    append = payloads.append
    value = google_crc32c.value
    unpack = _CRC_AND_OFFSET.unpack_from
    payload_at = FRAME_HEADER_BYTES
    for position, size, offset in zip(positions, sizes, offsets, strict=True):
        at = position - base
        end = at + size
        crc, frame_offset = unpack(buf, at)
        if value(buf[at + 4 : end]) != crc or frame_offset != offset:
            return position
        append(buf[at + payload_at : end])
    return payloads


def decode_entry(frame: bytes) -> Entry:
    """The Entry of exactly one frame, checked as Entry() checks it (a frame from the network
    may hold a valid CRC over impossible values); raises FrameDamaged (saying why) otherwise.
    One pass over the frame: a follower decodes every entry it receives."""
    decoded = decode_frames(frame, 1)
    if isinstance(decoded, tuple):
        raise FrameDamaged(f"not a valid log frame: {decoded[1].value}")
    entry = decoded[0]
    trailing = len(frame) - FRAME_HEADER_BYTES - len(entry.payload)
    if trailing:
        raise FrameDamaged(f"not a single log frame: {trailing} trailing bytes")
    if entry.index < 1 or entry.term < 1 or (entry.type is EntryType.NOOP and entry.payload):
        raise FrameDamaged(f"the frame holds an impossible entry: {entry!r}")
    if entry.type is EntryType.RECORDS and (why := records_damage(entry.payload)):
        raise FrameDamaged(f"the frame holds a bad RECORDS entry: {why}")
    return entry


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """The first bytes of a segment file.

    base_index: Raft index of the segment's first entry.
    base_offset: the next record offset before that entry.
    prev_term: the term of entry base_index - 1 (0 when base_index is 1), so the log
        base stays known after every earlier segment is dropped.
    generation: bumped by every reset; recovery discards older generations.
    """

    base_index: int
    base_offset: int
    prev_term: int
    generation: int

    def encode(self) -> bytes:
        body = _SEGMENT_HEADER.pack(
            SEGMENT_MAGIC,
            SEGMENT_FORMAT_VERSION,
            0,
            self.base_index,
            self.base_offset,
            self.prev_term,
            self.generation,
        )
        return body + _CRC.pack(google_crc32c.value(body))

    @classmethod
    def decode(cls, data: bytes) -> SegmentHeader | str:
        """The header, or a sentence saying what is wrong with it."""
        if len(data) < SEGMENT_HEADER_BYTES:
            return f"the segment header is short ({len(data)} of {SEGMENT_HEADER_BYTES} bytes)"
        body = data[: _SEGMENT_HEADER.size]
        (crc,) = _CRC.unpack_from(data, _SEGMENT_HEADER.size)
        magic, version, _, base_index, base_offset, prev_term, generation = _SEGMENT_HEADER.unpack(
            body
        )
        if magic != SEGMENT_MAGIC:
            return f"not a logmesh segment (magic {magic!r})"
        if google_crc32c.value(body) != crc:
            return "the segment header checksum does not match"
        if version != SEGMENT_FORMAT_VERSION:
            return f"unsupported segment format version {version}"
        if base_index < 1:
            return f"impossible base index {base_index}"
        return cls(base_index, base_offset, prev_term, generation)
