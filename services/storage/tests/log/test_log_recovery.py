"""Recovery: torn tails, short, long, damaged and stale index caches, leftovers."""

from __future__ import annotations

from log_helpers import make_entries
from logmesh_storage.log import Log, LogConfig, MemoryFileSystem
from logmesh_storage.log.index import SegmentIndex
from logmesh_storage.log.segment import segment_name
from logmesh_storage.log.store import FRAME_HEADER_BYTES

D = "/log"
SEG1 = f"{D}/{segment_name(1)}"
IDX1 = SEG1.replace(".seg", ".idx")
SMALL = LogConfig(segment_bytes_max=200)


def test_torn_last_frame_is_cut_and_the_log_continues() -> None:
    fs = MemoryFileSystem()
    log = Log.open(fs, D, LogConfig())
    log.append(make_entries(1, 4))
    data = fs.read_bytes(SEG1)
    fs.write_bytes(SEG1, data[:-5])  # the last frame lost its end
    log = Log.open(fs, D, LogConfig())
    assert log.last_index == 3
    assert len(fs.read_bytes(SEG1)) == log.size_bytes  # cut on disk, not only in memory
    log.append(make_entries(4, 1, first_offset=3))
    assert log.entry(4).offset == 3


def test_garbled_end_of_the_last_frame_is_a_torn_tail() -> None:
    fs = MemoryFileSystem()
    Log.open(fs, D, LogConfig()).append(make_entries(1, 3, payload_bytes=30))
    data = bytearray(fs.read_bytes(SEG1))
    for i in range(1, 9):
        data[-i] ^= 0x5A
    fs.write_bytes(SEG1, bytes(data))
    log = Log.open(fs, D, LogConfig())
    assert [e.index for e in log.entries(1, log.last_index + 1)] == [1, 2]


def test_short_index_cache_is_completed_from_the_store() -> None:
    fs = MemoryFileSystem()
    log = Log.open(fs, D, LogConfig())
    log.append(make_entries(1, 3, config_every=2))
    log.close()
    log = Log.open(fs, D, LogConfig())
    log.append(make_entries(4, 3, first_offset=2, config_every=2))
    # no close: the cache on disk covers only the first three entries
    log = Log.open(fs, D, LogConfig())
    assert log.last_index == 6
    assert log.config_indices() == [2, 4, 6]
    assert log.entries(1, 7) == make_entries(1, 6, config_every=2)


def test_long_index_cache_is_cut_to_the_store() -> None:
    fs = MemoryFileSystem()
    log = Log.open(fs, D, LogConfig())
    log.append(make_entries(1, 5))
    log.close()
    long_cache = fs.read_bytes(IDX1)
    log = Log.open(fs, D, LogConfig())
    log.truncate_suffix(3)
    log.close()
    fs.write_bytes(IDX1, long_cache)  # a cache that still describes entries 3..5
    log = Log.open(fs, D, LogConfig())
    assert log.last_index == 2
    assert log.next_offset == 2


def test_damaged_index_cache_of_a_sealed_segment_is_rebuilt() -> None:
    fs = MemoryFileSystem()
    log = Log.open(fs, D, SMALL)
    for batch in range(4):
        log.append(make_entries(batch * 3 + 1, 3, first_offset=batch * 3))
    log.close()
    good = fs.read_bytes(IDX1)
    fs.write_bytes(IDX1, good[:40] + bytes([good[40] ^ 1]) + good[41:])
    log = Log.open(fs, D, SMALL)
    assert log.entries(1, 13) == make_entries(1, 12)
    assert fs.read_bytes(IDX1) == good  # rewritten from the store


def test_cache_from_another_history_is_not_trusted() -> None:
    fs = MemoryFileSystem()
    log = Log.open(fs, D, LogConfig())
    log.append(make_entries(1, 3, term=1))
    log.close()
    cache = fs.read_bytes(IDX1)
    log = Log.open(fs, D, LogConfig())
    log.truncate_suffix(1)
    log.append(make_entries(1, 3, term=2))  # same sizes, other terms
    log.close()
    fs.write_bytes(IDX1, cache)
    log = Log.open(fs, D, LogConfig())
    assert [log.term_at(i) for i in (1, 2, 3)] == [2, 2, 2]


def test_leftover_tmp_and_orphan_index_files_are_removed() -> None:
    fs = MemoryFileSystem()
    Log.open(fs, D, LogConfig()).close()
    fs.write_bytes(f"{D}/{segment_name(9)}.tmp", b"half a header")
    fs.write_bytes(f"{D}/{segment_name(9)}".replace(".seg", ".idx"), b"junk")
    Log.open(fs, D, LogConfig())
    assert fs.list_dir(D) == [segment_name(1).replace(".seg", ".idx"), segment_name(1)]


def test_segments_of_an_older_generation_are_removed() -> None:
    fs = MemoryFileSystem()
    log = Log.open(fs, D, LogConfig())
    log.append(make_entries(1, 3))
    old_segment = fs.read_bytes(SEG1)
    log.reset(10, 4, 8)
    fs.write_bytes(SEG1, old_segment)  # as if the crash came before its removal
    log = Log.open(fs, D, LogConfig())
    assert (log.base.index, log.base.term, log.base.next_offset) == (10, 4, 8)
    assert fs.list_dir(D) == [segment_name(11)]


def test_index_cache_decodes_what_the_log_wrote() -> None:
    fs = MemoryFileSystem()
    log = Log.open(fs, D, LogConfig())
    log.append(make_entries(1, 2, payload_bytes=7))
    log.close()
    cache = SegmentIndex.decode(fs.read_bytes(IDX1), 1)
    assert cache is not None
    assert list(cache.frame_sizes) == [FRAME_HEADER_BYTES + 7] * 2
