"""Log operations: rolls, reads, truncation, prefix drops, reset, retention."""

from __future__ import annotations

from log_helpers import make_entries
from logmesh_storage.log import Entry, EntryType, Log, LogBase, LogConfig, MemoryFileSystem
from logmesh_storage.log.fs import File

D = "/log"


def filled(fs: MemoryFileSystem, config: LogConfig, batches: int, size: int = 4) -> Log:
    log = Log.open(fs, D, config)
    for b in range(batches):
        log.append(make_entries(b * size + 1, size, first_offset=b * size, timestamp_ms=b * 10))
    return log


def test_a_batch_never_spans_segments() -> None:
    log = filled(MemoryFileSystem(), LogConfig(segment_bytes_max=100), 5)
    assert len(log.segment_paths) == 5  # each batch of 4 frames (~200 B) fills a segment
    assert log.entries(1, 21) == [
        e
        for b in range(5)
        for e in make_entries(b * 4 + 1, 4, first_offset=b * 4, timestamp_ms=b * 10)
    ]


def test_truncate_suffix_across_segments_then_append() -> None:
    fs = MemoryFileSystem()
    log = filled(fs, LogConfig(segment_bytes_max=100), 5)
    log.truncate_suffix(7)
    assert (log.last_index, log.next_offset, len(log.segment_paths)) == (6, 6, 2)
    log.append([Entry(7, 2, EntryType.NOOP, 6, 0, b"")])
    log = Log.open(fs, D, LogConfig(segment_bytes_max=100))
    assert log.last_index == 7
    assert log.term_at(7) == 2


def test_drop_prefix_keeps_the_base_of_what_remains() -> None:
    log = filled(MemoryFileSystem(), LogConfig(segment_bytes_max=100), 5)
    log.drop_prefix(10)
    assert log.first_index == 9  # segment 9..12 holds index 10: it stays
    assert log.base == LogBase(8, 1, 8)
    assert log.term_at(8) == 1
    log.drop_prefix(100)
    assert log.first_index == 17  # never the active segment


def test_reset_survives_reopen() -> None:
    fs = MemoryFileSystem()
    log = filled(fs, LogConfig(), 2)
    log.reset(50, 3, 40)
    log = Log.open(fs, D, LogConfig())
    assert log.base == LogBase(50, 3, 40)
    assert (log.first_index, log.last_index, log.next_offset, log.first_offset) == (51, 50, 40, 40)
    assert log.read_from_offset(40, 10, 100) == []


def test_retention_by_size_drops_oldest_segments_below_the_bound() -> None:
    log = filled(MemoryFileSystem(), LogConfig(segment_bytes_max=100, retention_bytes_max=500), 5)
    assert log.apply_retention(upto_index=4, now_ms=0) == ["/log/00000000000000000001.seg"]
    assert log.first_index == 5  # still over the size limit, but segment 5..8 is not <= 4
    removed = log.apply_retention(upto_index=20, now_ms=0)
    assert len(removed) == 3  # segments of 252 B: 1008 -> 756 -> 504 -> 252
    assert log.size_bytes <= 500


def test_retention_by_age_uses_the_newest_entry_of_a_segment() -> None:
    log = filled(MemoryFileSystem(), LogConfig(segment_bytes_max=100, retention_age_ms_max=15), 5)
    # segments hold timestamps 0, 10, 20, 30, 40; at now=35 those older than 20 go
    removed = log.apply_retention(upto_index=20, now_ms=35)
    assert len(removed) == 2
    assert log.first_index == 9


def test_read_from_offset_skips_control_entries_and_respects_commit() -> None:
    log = Log.open(MemoryFileSystem(), D, LogConfig())
    log.append(
        [
            Entry(1, 1, EntryType.NOOP, 0, 0, b""),
            Entry(2, 1, EntryType.DATA, 0, 0, b"a"),
            Entry(3, 1, EntryType.CONFIG, 1, 0, b"cfg"),
            Entry(4, 1, EntryType.DATA, 1, 0, b"b"),
            Entry(5, 1, EntryType.DATA, 2, 0, b"c"),
        ]
    )
    assert [e.payload for e in log.read_from_offset(0, 10, 5)] == [b"a", b"b", b"c"]
    assert [e.payload for e in log.read_from_offset(0, 10, 4)] == [b"a", b"b"]
    assert [e.payload for e in log.read_from_offset(1, 1, 5)] == [b"b"]
    assert log.read_from_offset(3, 10, 5) == []
    assert log.read_offset(1).index == 4
    block = log.read_records(0, 10, 5)  # the same as columns, control entries left out
    assert (list(block.offsets), block.payloads, block.next_offset) == (
        [0, 1, 2],
        [b"a", b"b", b"c"],
        3,
    )
    assert log.read_records(0, 10, 4).payloads == [b"a", b"b"]
    assert log.read_records(1, 1, 5).payloads == [b"b"]
    assert len(log.read_records(3, 10, 5)) == 0


def test_reads_past_trailing_control_entries_end_at_the_log_end() -> None:
    # Found by the stateful test: the stop of a read landed before its start when control
    # entries followed the last record.
    log = Log.open(MemoryFileSystem(), D, LogConfig())
    log.append(
        [
            Entry(1, 1, EntryType.DATA, 0, 0, b"a"),
            Entry(2, 1, EntryType.NOOP, 1, 0, b""),
            Entry(3, 1, EntryType.NOOP, 1, 0, b""),
        ]
    )
    assert [e.payload for e in log.read_from_offset(0, 2, 3)] == [b"a"]
    assert log.read_records(0, 2, 3).payloads == [b"a"]


def test_read_records_spans_segments() -> None:
    log = filled(MemoryFileSystem(), LogConfig(segment_bytes_max=100), 5)
    block = log.read_records(2, 13, 100)
    assert list(block.offsets) == list(range(2, 15))
    assert block.payloads == [e.payload for e in log.read_from_offset(2, 13, 100)]
    assert list(block.timestamps_ms) == [o // 4 * 10 for o in range(2, 15)]


def test_entries_honours_max_bytes_but_returns_at_least_one() -> None:
    log = Log.open(MemoryFileSystem(), D, LogConfig())
    log.append(make_entries(1, 5, payload_bytes=10))
    assert len(log.entries(1, 6, max_bytes=0)) == 1
    assert len(log.entries(1, 6, max_bytes=25)) == 2
    assert len(log.entries(1, 6)) == 5


class CountingFileSystem(MemoryFileSystem):
    """Counts preads, to show that a lookup reads one frame and scans nothing."""

    preads = 0

    def open(self, path: str, *, create: bool) -> File:
        inner = super().open(path, create=create)
        fs = self

        class Counting:
            def __getattr__(self, name: str) -> object:
                return getattr(inner, name)

            def pread(self, position: int, size: int) -> bytes:
                fs.preads += 1
                return inner.pread(position, size)

        return Counting()  # type: ignore[return-value]


def test_read_by_offset_reads_one_frame_whatever_the_segment_count() -> None:
    fs = CountingFileSystem()
    log = filled(fs, LogConfig(segment_bytes_max=100), 100)
    assert len(log.segment_paths) == 100
    fs.preads = 0
    for offset in range(0, 400, 7):
        assert log.read_offset(offset).offset == offset
    assert fs.preads == len(range(0, 400, 7))
