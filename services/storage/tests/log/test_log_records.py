"""RECORDS entries: many client records in one entry (one frame, one checksum), read back
record by record at their own offsets, across reopen, recovery and a rebuilt index."""

from __future__ import annotations

import pytest
from logmesh_storage.log import (
    CorruptLog,
    Entry,
    EntryType,
    FrameDamaged,
    Log,
    LogConfig,
    MemoryFileSystem,
    decode_entry,
    encode_entry,
)
from logmesh_storage.log.entry import decode_records, encode_records, records_damage
from logmesh_storage.log.segment import segment_name

D = "/log"
SEG1 = f"{D}/{segment_name(1)}"
VALUES = [b"a", b"", b"ccc", b"dd"]


def records(index: int, offset: int, values: list[bytes], term: int = 1) -> Entry:
    return Entry(index, term, EntryType.RECORDS, offset, 100 + index, encode_records(values))


def mixed_log(fs: MemoryFileSystem) -> Log:
    """DATA 0, RECORDS 1-4, NOOP, RECORDS 5-6, DATA 7."""
    log = Log.open(fs, D, LogConfig())
    log.append(
        [
            Entry(1, 1, EntryType.DATA, 0, 101, b"zero"),
            records(2, 1, VALUES),
            Entry(3, 2, EntryType.NOOP, 5, 103, b""),
            records(4, 5, [b"five", b"six"], term=2),
            Entry(5, 2, EntryType.DATA, 7, 105, b"seven"),
        ]
    )
    return log


ALL = [b"zero", *VALUES, b"five", b"six", b"seven"]


def test_records_payload_round_trip_and_slices() -> None:
    payload = encode_records(VALUES)
    assert decode_records(payload) == VALUES
    assert decode_records(payload, 1, 3) == VALUES[1:3]
    assert decode_records(payload, 3, 99) == VALUES[3:]
    assert decode_records(payload, 4) == []
    assert records(1, 0, VALUES).next_offset == 4
    assert records(1, 0, VALUES).record_count == 4


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\x01\x00", "too short for a record count"),
        (b"\x00\x00\x00\x00", "a record count of 0"),
        (b"\x09\x00\x00\x00\x01\x00\x00\x00", "a record count of 9"),
        (encode_records([b"abc"])[:-1], "1 records of 3 bytes in 2 bytes"),
        (encode_records([b"abc"]) + b"x", "1 records of 3 bytes in 4 bytes"),
    ],
)
def test_a_malformed_records_payload_is_refused(payload: bytes, why: str) -> None:
    assert why in (records_damage(payload) or "")
    with pytest.raises(ValueError, match=why):
        Entry(1, 1, EntryType.RECORDS, 0, 0, payload)


def test_a_received_frame_with_bad_records_is_refused() -> None:
    good = records(1, 0, [b"abc"])
    frame = encode_entry(good)
    assert decode_entry(frame) == good
    bad = Entry.__new__(Entry)  # bypass the constructor's check, as a buggy peer would
    for name, value in zip(
        ("index", "term", "type", "offset", "timestamp_ms", "payload"),
        (1, 1, EntryType.RECORDS, 0, 0, b"\x02\x00\x00\x00"),
        strict=True,
    ):
        object.__setattr__(bad, name, value)
    with pytest.raises(FrameDamaged, match="bad RECORDS entry"):
        decode_entry(encode_entry(bad))


def test_each_record_is_read_at_its_own_offset() -> None:
    log = mixed_log(MemoryFileSystem())
    assert log.next_offset == 8
    assert [log.read_offset(o).payload for o in range(8)] == ALL
    assert log.read_offset(3).index == 2  # a record of a RECORDS entry keeps its coordinates
    assert [e.offset for e in log.read_from_offset(2, 4, 5)] == [2, 3, 4, 5]
    assert [e.payload for e in log.read_from_offset(3, 100, 3)] == VALUES[2:]  # max_index
    block = log.read_records(2, 5, 5)
    assert (list(block.offsets), block.payloads) == (
        [2, 3, 4, 5, 6],
        [*VALUES[1:], b"five", b"six"],
    )
    assert list(block.terms) == [1, 1, 1, 2, 2]
    assert list(block.timestamps_ms) == [102, 102, 102, 104, 104]
    assert log.read_records(0, 100, 5).payloads == ALL


def test_reopen_with_and_without_the_index_cache_keeps_offsets() -> None:
    fs = MemoryFileSystem()
    mixed_log(fs).close()  # writes the index cache
    assert Log.open(fs, D, LogConfig()).read_records(0, 100, 5).payloads == ALL
    fs.remove(SEG1.replace(".seg", ".idx"))  # rebuilt by scanning the frames
    log = Log.open(fs, D, LogConfig())
    assert log.next_offset == 8
    assert log.read_records(0, 100, 5).payloads == ALL
    log.append([records(6, 8, [b"eight", b"nine"], term=2)])
    assert log.read_offset(9).payload == b"nine"


def test_a_torn_records_frame_is_cut_whole() -> None:
    fs = MemoryFileSystem()
    log = Log.open(fs, D, LogConfig())
    log.append([Entry(1, 1, EntryType.DATA, 0, 0, b"zero")])
    log.append([records(2, 1, VALUES)])
    fs.write_bytes(SEG1, fs.read_bytes(SEG1)[:-2])  # the batch of records lost its end
    log = Log.open(fs, D, LogConfig())
    assert (log.last_index, log.next_offset) == (1, 1)  # none of its records survive


def test_damage_inside_a_records_frame_is_found_on_read() -> None:
    fs = MemoryFileSystem()
    log = mixed_log(fs)
    data = bytearray(fs.read_bytes(SEG1))
    data[data.index(b"ccc")] ^= 0x01
    fs.write_bytes(SEG1, bytes(data))
    with pytest.raises(CorruptLog, match="checksum"):
        log.read_records(1, 4, 5)
