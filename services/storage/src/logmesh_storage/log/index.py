"""The index of one segment: Raft index -> frame position, and record offset -> entry.

Kept in memory as typed columns (array module) so lookups are O(1) by Raft index and
O(log n) by offset (bisect), and persisted as a cache file when a segment is sealed or
the log closes. The file is never trusted: `decode` rejects a damaged file and the
segment checks what remains against the store (docs/log-format.md). No file access here.
"""

from __future__ import annotations

import bisect
import struct
import sys
from array import array

import google_crc32c

from .entry import EntryType
from .store import FrameMeta

INDEX_MAGIC = b"LMIDXv02"  # v02 added the counts column (a v01 cache is rebuilt)
_HEADER = struct.Struct("<8sQQ")  # magic, base_index, count
_CRC = struct.Struct("<I")
# Column element sizes, in file order: positions, frame sizes, terms, offsets,
# timestamps, types, record counts.
_COLUMN_CODES = ("Q", "I", "Q", "Q", "q", "B", "I")
_RECORD_BYTES = sum(array(code).itemsize for code in _COLUMN_CODES)
_CONFIG = int(EntryType.CONFIG)


class SegmentIndex:
    """Columns over the entries of one segment, entry i having Raft index base_index + i."""

    def __init__(self, base_index: int) -> None:
        self.base_index = base_index
        self.positions = array("Q")
        self.frame_sizes = array("I")
        self.terms = array("Q")
        self.offsets = array("Q")
        self.timestamps = array("q")
        self.types = array("B")
        self.counts = array("I")  # client records per entry: 1 DATA, n RECORDS, 0 control
        self.config_indices: list[int] = []

    def __len__(self) -> int:
        return len(self.positions)

    def _columns(self) -> tuple[array[int], ...]:
        return (
            self.positions,
            self.frame_sizes,
            self.terms,
            self.offsets,
            self.timestamps,
            self.types,
            self.counts,
        )

    def add(self, meta: FrameMeta) -> None:
        self.positions.append(meta.position)
        self.frame_sizes.append(meta.frame_bytes)
        self.terms.append(meta.term)
        self.offsets.append(meta.offset)
        self.timestamps.append(meta.timestamp_ms)
        self.types.append(meta.type)
        self.counts.append(meta.count)
        if meta.type == _CONFIG:
            self.config_indices.append(meta.index)

    def truncate(self, count: int) -> None:
        """Keep the first `count` entries."""
        for column in self._columns():
            del column[count:]
        last_kept = self.base_index + count - 1
        self.config_indices = [i for i in self.config_indices if i <= last_kept]

    @property
    def end_position(self) -> int | None:
        """Where the frame after the last indexed one starts (None when empty)."""
        if not self.positions:
            return None
        return self.positions[-1] + self.frame_sizes[-1]

    def find_offset(self, offset: int) -> int | None:
        """The position in this index of the entry holding record `offset`, by bisection.

        Control entries store the offset the next record will get, so the entries with
        offset <= o end with the one holding o, if this segment has it: the last one."""
        i = bisect.bisect_right(self.offsets, offset) - 1
        if i < 0 or offset >= self.offsets[i] + self.counts[i]:
            return None
        return i

    def first_at_or_after_offset(self, offset: int) -> int:
        """The position of the first entry holding a record at `offset` or later."""
        i = self.find_offset(offset)
        return bisect.bisect_left(self.offsets, offset) if i is None else i

    def encode(self) -> bytes:
        """The cache file's bytes: header, columns, CRC32C of everything before."""
        parts = [_HEADER.pack(INDEX_MAGIC, self.base_index, len(self))]
        for column in self._columns():
            if sys.byteorder != "little":
                swapped = array(column.typecode, column)
                swapped.byteswap()
                parts.append(swapped.tobytes())
            else:
                parts.append(column.tobytes())
        body = b"".join(parts)
        return body + _CRC.pack(google_crc32c.value(body))

    @classmethod
    def decode(cls, data: bytes, base_index: int) -> SegmentIndex | None:
        """The index in a cache file, or None when the file is damaged or foreign."""
        if len(data) < _HEADER.size + _CRC.size:
            return None
        magic, file_base_index, count = _HEADER.unpack_from(data, 0)
        if magic != INDEX_MAGIC or file_base_index != base_index:
            return None
        if len(data) != _HEADER.size + count * _RECORD_BYTES + _CRC.size:
            return None
        (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
        if google_crc32c.value(data[: -_CRC.size]) != crc:
            return None
        index = cls(base_index)
        at = _HEADER.size
        for column in index._columns():
            size = count * column.itemsize
            column.frombytes(data[at : at + size])
            if sys.byteorder != "little":
                column.byteswap()
            at += size
        index.config_indices = [base_index + i for i, t in enumerate(index.types) if t == _CONFIG]
        return index
