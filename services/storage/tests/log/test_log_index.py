"""The per-segment index: lookups and its cache file."""

from __future__ import annotations

from logmesh_storage.log import EntryType
from logmesh_storage.log.index import SegmentIndex
from logmesh_storage.log.store import FrameMeta

RECORDS_OF_3 = (EntryType.RECORDS, 3)


def build(types: list[EntryType | tuple[EntryType, int]]) -> SegmentIndex:
    """Entries of these types (RECORDS with their record count) from offset 100."""
    index = SegmentIndex(base_index=10)
    position, offset = 48, 100
    for i, spec in enumerate(types):
        type_, count = spec if isinstance(spec, tuple) else (spec, int(spec is EntryType.DATA))
        index.add(FrameMeta(position, 50, 10 + i, 2, offset, 1000 + i, type_, count))
        position += 50
        offset += count
    return index


def test_find_offset_skips_control_entries_sharing_the_offset() -> None:
    index = build(
        [EntryType.NOOP, EntryType.DATA, EntryType.CONFIG, EntryType.NOOP, EntryType.DATA]
    )
    assert index.find_offset(100) == 1
    assert index.find_offset(101) == 4
    assert index.find_offset(99) is None
    assert index.find_offset(102) is None
    assert index.config_indices == [12]


def test_find_offset_inside_a_records_entry() -> None:
    index = build([EntryType.DATA, RECORDS_OF_3, EntryType.NOOP, RECORDS_OF_3, EntryType.DATA])
    # offsets: DATA 100, RECORDS 101-103, NOOP (104), RECORDS 104-106, DATA 107
    assert [index.find_offset(o) for o in range(100, 109)] == [0, 1, 1, 1, 3, 3, 3, 4, None]
    assert index.first_at_or_after_offset(102) == 1  # the entry holding it, not the next
    assert index.first_at_or_after_offset(108) == 5  # past the end


def test_cache_round_trip() -> None:
    index = build([EntryType.DATA, EntryType.CONFIG, EntryType.DATA])
    decoded = SegmentIndex.decode(index.encode(), 10)
    assert decoded is not None
    assert list(decoded.positions) == [48, 98, 148]
    assert list(decoded.offsets) == [100, 101, 101]
    assert list(decoded.timestamps) == [1000, 1001, 1002]
    assert list(decoded.counts) == [1, 0, 1]
    assert decoded.config_indices == [11]


def test_damaged_or_foreign_cache_is_rejected() -> None:
    data = build([EntryType.DATA] * 3).encode()
    assert SegmentIndex.decode(data, 11) is None  # another segment's cache
    assert SegmentIndex.decode(data[:-1], 10) is None  # short
    assert SegmentIndex.decode(data[:30] + b"\x07" + data[31:], 10) is None  # damaged


def test_truncate_keeps_a_prefix() -> None:
    index = build([EntryType.DATA, EntryType.CONFIG, EntryType.DATA, EntryType.CONFIG])
    index.truncate(2)
    assert len(index) == 2
    assert index.end_position == 148
    assert index.config_indices == [11]
