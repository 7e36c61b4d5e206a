"""One test per error path of the log engine, each checking what the message says."""

from __future__ import annotations

import errno
import struct

import google_crc32c
import pytest
from log_helpers import make_entries
from logmesh_storage.log import (
    CorruptLog,
    Entry,
    EntryType,
    FrameDamaged,
    FsyncFailed,
    IndexCompacted,
    IndexOutOfRange,
    Log,
    LogClosed,
    LogConfig,
    LogFull,
    MemoryFileSystem,
    NotContiguous,
    OffsetOutOfRange,
    OffsetTruncated,
    decode_entry,
    encode_entry,
)
from logmesh_storage.log.segment import segment_name
from logmesh_storage.log.store import SEGMENT_HEADER_BYTES, SegmentHeader

D = "/log"


def open_log(fs: MemoryFileSystem, segment_bytes_max: int = 1 << 20) -> Log:
    return Log.open(fs, D, LogConfig(segment_bytes_max=segment_bytes_max))


def test_offset_past_the_end_says_next_offset() -> None:
    log = open_log(MemoryFileSystem())
    log.append(make_entries(1, 3))
    with pytest.raises(OffsetOutOfRange, match=r"offset 5 is past the end .*next offset is 3") as e:
        log.read_offset(5)
    assert e.value.next_offset == 3


def test_offset_below_retained_start_says_first_offset() -> None:
    log = open_log(MemoryFileSystem(), segment_bytes_max=100)
    for batch in range(6):
        log.append(make_entries(batch * 4 + 1, 4, first_offset=batch * 4))
    log.drop_prefix(log.last_index)
    with pytest.raises(OffsetTruncated, match=r"offset 0 was removed .*read from offset") as e:
        log.read_offset(0)
    assert e.value.first_offset == log.first_offset > 0


def test_index_past_the_end_says_last_index() -> None:
    log = open_log(MemoryFileSystem())
    log.append(make_entries(1, 2))
    with pytest.raises(IndexOutOfRange, match=r"index 3 is past the last entry .*\(2\)"):
        log.entry(3)
    with pytest.raises(IndexOutOfRange):
        log.entries(1, 4)


def test_index_compacted_says_send_a_snapshot() -> None:
    log = open_log(MemoryFileSystem())
    log.reset(10, 2, 7)
    with pytest.raises(IndexCompacted, match=r"index 10 was compacted .*send a snapshot") as e:
        log.entry(10)
    assert e.value.first_index == 11
    with pytest.raises(IndexCompacted):
        log.term_at(9)
    with pytest.raises(IndexCompacted):
        log.truncate_suffix(5)
    assert log.term_at(10) == 2


@pytest.mark.parametrize(
    ("entry", "what"),
    [
        (Entry(3, 1, EntryType.DATA, 2, 0, b""), "entry index 3 does not follow 1"),
        (Entry(2, 1, EntryType.DATA, 9, 0, b""), "entry 2 has offset 9, not 1"),
    ],
)
def test_append_not_continuing_the_log_is_rejected(entry: Entry, what: str) -> None:
    log = open_log(MemoryFileSystem())
    log.append(make_entries(1, 1))
    with pytest.raises(NotContiguous, match=f"append rejected: {what}.*truncate_suffix"):
        log.append([entry])


def test_append_with_a_lower_term_is_rejected() -> None:
    log = open_log(MemoryFileSystem())
    log.append(make_entries(1, 1, term=3))
    with pytest.raises(NotContiguous, match="entry term 2 is below the previous 3"):
        log.append(make_entries(2, 1, term=2, first_offset=1))


def test_stray_file_is_named() -> None:
    fs = MemoryFileSystem()
    open_log(fs).close()
    fs.write_bytes(f"{D}/notes.txt", b"hello")
    with pytest.raises(CorruptLog, match=r"/log/notes.txt: a file that is not part of"):
        open_log(fs)


def test_foreign_segment_header_is_named() -> None:
    fs = MemoryFileSystem()
    open_log(fs).close()
    fs.write_bytes(f"{D}/{segment_name(1)}", b"X" * 100)
    with pytest.raises(CorruptLog, match=r"00000000000000000001.seg at byte 0: not a logmesh"):
        open_log(fs)


def test_segment_named_after_another_base_is_corrupt() -> None:
    fs = MemoryFileSystem()
    open_log(fs).close()
    fs.rename(f"{D}/{segment_name(1)}", f"{D}/{segment_name(5)}")
    with pytest.raises(CorruptLog, match="the header says base index 1"):
        open_log(fs)


def test_segment_gap_is_corrupt_not_offset_zero() -> None:
    fs = MemoryFileSystem()
    log = open_log(fs, segment_bytes_max=100)
    for batch in range(6):
        log.append(make_entries(batch * 4 + 1, 4, first_offset=batch * 4))
    log.close()
    names = [n for n in fs.list_dir(D) if n.endswith(".seg")]
    fs.remove(f"{D}/{names[1]}")
    with pytest.raises(CorruptLog, match=r"segment gap: it starts at index 9 but .* ends at 4"):
        open_log(fs)


def test_bad_frame_followed_by_a_valid_one_is_corrupt() -> None:
    fs = MemoryFileSystem()
    log = open_log(fs)
    log.append(make_entries(1, 3))
    log.close()
    path = f"{D}/{segment_name(1)}"
    fs.remove(path.replace(".seg", ".idx"))
    data = bytearray(fs.read_bytes(path))
    data[SEGMENT_HEADER_BYTES + 20] ^= 0xFF  # inside the first frame's header
    fs.write_bytes(path, bytes(data))
    with pytest.raises(
        CorruptLog, match=r"at byte 48: the frame checksum .* a valid frame follows"
    ):
        open_log(fs)


def test_damage_in_a_sealed_segment_is_corrupt() -> None:
    fs = MemoryFileSystem()
    log = open_log(fs, segment_bytes_max=100)
    for batch in range(3):
        log.append(make_entries(batch * 4 + 1, 4, first_offset=batch * 4))
    log.close()
    path = f"{D}/{segment_name(1)}"
    fs.remove(path.replace(".seg", ".idx"))
    fs.write_bytes(path, fs.read_bytes(path)[:-3])
    with pytest.raises(CorruptLog, match=r"the file ends inside a frame in a sealed segment"):
        open_log(fs)


def test_damage_found_on_read_is_corrupt() -> None:
    fs = MemoryFileSystem()
    log = open_log(fs)
    log.append(make_entries(1, 3))
    path = f"{D}/{segment_name(1)}"
    data = bytearray(fs.read_bytes(path))
    data[-1] ^= 0x01  # the last payload byte, after recovery trusted it
    fs.write_bytes(path, bytes(data))
    with pytest.raises(CorruptLog, match=r"the frame checksum does not match on read"):
        log.entry(3)
    with pytest.raises(CorruptLog, match=r"the frame checksum or offset does not match on read"):
        log.read_records(0, 3, 3)  # the consumers' path checks every frame too
    assert log.read_records(0, 2, 3).payloads == [e.payload for e in make_entries(1, 2)]


def test_full_disk_rolls_the_append_back() -> None:
    fs = MemoryFileSystem()
    log = open_log(fs)
    log.append(make_entries(1, 2))
    fs.capacity_bytes = len(fs.read_bytes(f"{D}/{segment_name(1)}")) + 30
    with pytest.raises(LogFull, match=r"no space left .*rolled back.*free disk space"):
        log.append(make_entries(3, 2, first_offset=2))
    assert log.last_index == 2
    assert len(fs.read_bytes(f"{D}/{segment_name(1)}")) == log.size_bytes
    fs.capacity_bytes = None
    log.append(make_entries(3, 1, first_offset=2))
    assert log.entry(3).offset == 2


def test_fsync_failure_is_fatal_and_never_retried() -> None:
    fs = MemoryFileSystem()
    log = open_log(fs)
    fs.syncs_until_failure = 0
    with pytest.raises(FsyncFailed, match=r"fsync of /log/0+1.seg failed .*accepts no more"):
        log.append(make_entries(1, 1))
    fs.syncs_until_failure = None
    with pytest.raises(FsyncFailed):
        log.append(make_entries(1, 1))
    with pytest.raises(FsyncFailed):
        log.truncate_suffix(1)


def test_write_error_other_than_a_full_disk_is_fatal() -> None:
    fs = MemoryFileSystem()
    log = open_log(fs)
    fs.write_errno = errno.EIO
    with pytest.raises(FsyncFailed, match=r"failed \(write failed: .*simulated write failure"):
        log.append(make_entries(1, 1))
    fs.write_errno = None
    with pytest.raises(FsyncFailed):
        log.append(make_entries(1, 1))


def test_use_after_close_says_open_again() -> None:
    log = open_log(MemoryFileSystem())
    log.close()
    with pytest.raises(LogClosed, match="the log is closed; open it again"):
        log.append(make_entries(1, 1))
    with pytest.raises(LogClosed):
        log.entry(1)


def test_decode_entry_rejects_damaged_frames() -> None:
    frame = encode_entry(make_entries(1, 1)[0])
    with pytest.raises(FrameDamaged, match="checksum does not match"):
        decode_entry(frame[:-1] + bytes([frame[-1] ^ 1]))
    with pytest.raises(FrameDamaged, match="2 trailing bytes"):
        decode_entry(frame + b"xx")
    with pytest.raises(FrameDamaged, match="ends inside a frame"):
        decode_entry(frame[:-1])


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"segment_bytes_max": 0}, "segment_bytes_max must be >= 1"),
        ({"retention_bytes_max": -1}, "retention_bytes_max must be >= 0"),
        ({"retention_age_ms_max": -1}, "retention_age_ms_max must be >= 0"),
    ],
)
def test_config_rejects_impossible_limits(kwargs: dict[str, int], what: str) -> None:
    with pytest.raises(ValueError, match=what):
        LogConfig(**kwargs)


def write_segment(fs: MemoryFileSystem, header: SegmentHeader, frames: list[bytes]) -> None:
    fs.write_bytes(f"{D}/{segment_name(header.base_index)}", header.encode() + b"".join(frames))


def with_type(entry: Entry, type_byte: int) -> bytes:
    """A frame with a valid CRC but an arbitrary type byte."""
    frame = bytearray(encode_entry(entry))
    frame[40] = type_byte  # crc 4 + length 4 + index, term, offset, timestamp 32
    frame[:4] = google_crc32c.value(bytes(frame[4:])).to_bytes(4, "little")
    return bytes(frame)


@pytest.mark.parametrize(
    ("second", "what"),
    [
        (Entry(3, 1, EntryType.DATA, 1, 0, b"b"), "frame holds index 3, expected 2"),
        (Entry(2, 1, EntryType.DATA, 5, 0, b"b"), "frame holds offset 5, expected 1"),
        (Entry(2, 1, EntryType.DATA, 1, 0, b"b"), "frame term 1 is below the previous 2"),
    ],
)
def test_valid_frame_that_does_not_continue_is_corrupt(second: Entry, what: str) -> None:
    fs = MemoryFileSystem()
    fs.make_dirs(D)
    first = Entry(1, 2 if "term" in what else 1, EntryType.DATA, 0, 0, b"a")
    write_segment(fs, SegmentHeader(1, 0, 0, 0), [encode_entry(first), encode_entry(second)])
    with pytest.raises(CorruptLog, match=what):
        open_log(fs)


def test_valid_frame_with_unknown_type_is_corrupt() -> None:
    fs = MemoryFileSystem()
    fs.make_dirs(D)
    frame = with_type(Entry(1, 1, EntryType.DATA, 0, 0, b"a"), 9)
    write_segment(fs, SegmentHeader(1, 0, 0, 0), [frame])
    with pytest.raises(CorruptLog, match="a valid checksum but an unknown entry type"):
        open_log(fs)


def test_segment_that_does_not_continue_the_previous_one_is_corrupt() -> None:
    fs = MemoryFileSystem()
    fs.make_dirs(D)
    write_segment(fs, SegmentHeader(1, 0, 0, 0), [encode_entry(make_entries(1, 1)[0])])
    write_segment(fs, SegmentHeader(2, 1, 5, 0), [])  # previous term 5, but entry 1 has 1
    with pytest.raises(CorruptLog, match=r"does not continue .*previous term 5 vs 1"):
        open_log(fs)


def test_frame_replaced_after_open_is_caught_on_read() -> None:
    fs = MemoryFileSystem()
    log = open_log(fs)
    log.append(make_entries(1, 2))
    path = f"{D}/{segment_name(1)}"
    other = encode_entry(Entry(7, 1, EntryType.DATA, 0, 0, bytes([1]) * 10))
    data = fs.read_bytes(path)
    fs.write_bytes(
        path, data[:SEGMENT_HEADER_BYTES] + other + data[SEGMENT_HEADER_BYTES + len(other) :]
    )
    with pytest.raises(CorruptLog, match="the frames hold other indices than the index says"):
        log.entry(1)


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ((b"LMSEGv01", 9, 0, 1, 0, 0, 0), "unsupported segment format version 9"),
        ((b"LMSEGv01", 1, 0, 0, 0, 0, 0), "impossible base index 0"),
    ],
)
def test_segment_header_errors_say_what_is_wrong(fields: tuple[object, ...], what: str) -> None:
    body = struct.pack("<8sHHQQQQ", *fields)
    data = body + google_crc32c.value(body).to_bytes(4, "little")
    assert SegmentHeader.decode(data) == what
