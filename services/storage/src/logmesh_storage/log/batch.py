"""A batch of entries encoded once: the bytes the leader writes, ships and the follower
writes (DESIGN §9), with the columns the index needs, so appending it costs O(1) Python
work per batch beyond the encoding. No file access here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import google_crc32c

from .entry import Entry, record_count
from .errors import NotContiguous
from .store import (
    _BODY_HEAD,
    _CRC,
    _ENTRY_HEADER_BYTES,
    FRAME_HEADER_BYTES,
    Damage,
    FrameDamaged,
    check_frame,
)


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Contiguous frames joined in `data`, entry k having Raft index first_index + k.

    Internally contiguous by construction (indices +1, terms not decreasing, offsets
    following the entry types); whether it continues a given log is Log.append's check.
    """

    data: bytes
    first_index: int
    frame_sizes: list[int]
    terms: list[int]
    offsets: list[int]
    timestamps: list[int]
    types: list[int]
    counts: list[int]  # client records per entry (Entry.record_count)

    def __len__(self) -> int:
        return len(self.frame_sizes)


def _reject(what: str) -> None:
    raise NotContiguous(what)


def encode_batch(entries: Sequence[Entry]) -> EncodedBatch:
    """Encode `entries` (non-empty, contiguous) into one buffer: one loop, locals bound.
    Raises NotContiguous when the entries do not follow each other."""
    first = entries[0]
    index, term, offset = first.index - 1, first.term, first.offset
    parts: list[bytes] = []
    add_part = parts.append
    pack_head, pack_crc = _BODY_HEAD.pack, _CRC.pack
    crc_value, crc_extend = google_crc32c.value, google_crc32c.extend
    frame_sizes: list[int] = []
    terms: list[int] = []
    offsets: list[int] = []
    timestamps: list[int] = []
    types: list[int] = []
    counts: list[int] = []
    for entry in entries:
        if entry.index != index + 1 or entry.term < term or entry.offset != offset:
            _reject(_why(entry, index, term, offset))
        index, term = entry.index, entry.term
        payload = entry.payload
        count = record_count(entry.type, payload)
        offset += count
        body_head = pack_head(
            _ENTRY_HEADER_BYTES + len(payload),
            entry.index,
            entry.term,
            entry.offset,
            entry.timestamp_ms,
            entry.type,
        )
        add_part(pack_crc(crc_extend(crc_value(body_head), payload)))
        add_part(body_head)
        add_part(payload)
        frame_sizes.append(FRAME_HEADER_BYTES + len(payload))
        terms.append(entry.term)
        offsets.append(entry.offset)
        timestamps.append(entry.timestamp_ms)
        types.append(entry.type)
        counts.append(count)
    data = b"".join(parts)
    return EncodedBatch(data, first.index, frame_sizes, terms, offsets, timestamps, types, counts)


def _why(entry: Entry, index: int, term: int, offset: int) -> str:
    if entry.index != index + 1:
        return f"entry index {entry.index} does not follow {index}"
    if entry.term < term:
        return f"entry term {entry.term} is below the previous {term}"
    return f"entry {entry.index} has offset {entry.offset}, not {offset}"


def decode_batch(data: bytes) -> EncodedBatch:
    """Check received frames (CRC, contiguity) and index them without re-encoding.
    Raises FrameDamaged or NotContiguous, saying why."""
    at = 0
    frame_sizes, terms, offsets, timestamps, types, counts = [], [], [], [], [], []
    first_index = index = offset = term = -1
    while at < len(data):
        meta = check_frame(data, at)
        if isinstance(meta, Damage):
            raise FrameDamaged(f"not a valid log frame at byte {at}: {meta.value}")
        if first_index < 0:
            first_index, index, term, offset = meta.index, meta.index - 1, meta.term, meta.offset
        if meta.index != index + 1 or meta.term < term or meta.offset != offset:
            _reject(f"frame at byte {at} does not continue the batch (index {meta.index})")
        index, term = meta.index, meta.term
        offset += meta.count
        frame_sizes.append(meta.frame_bytes)
        terms.append(meta.term)
        offsets.append(meta.offset)
        timestamps.append(meta.timestamp_ms)
        types.append(meta.type)
        counts.append(meta.count)
        at += meta.frame_bytes
    if first_index < 0:
        raise FrameDamaged("an empty batch holds no frame")
    return EncodedBatch(data, first_index, frame_sizes, terms, offsets, timestamps, types, counts)
