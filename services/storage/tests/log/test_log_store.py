"""Frames and segment headers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from logmesh_storage.log import Entry, EntryType, decode_entry, encode_entry
from logmesh_storage.log.store import (
    FRAME_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    Damage,
    SegmentHeader,
    check_frame,
    decode_frames,
)

entries = st.builds(
    Entry,
    index=st.integers(1, 2**63),
    term=st.integers(1, 2**63),
    type=st.sampled_from([EntryType.DATA, EntryType.CONFIG]),
    offset=st.integers(0, 2**63),
    timestamp_ms=st.integers(-(2**62), 2**62),
    payload=st.binary(max_size=300),
)


@settings(derandomize=True)
@given(entries)
def test_encode_then_decode_is_the_identity(entry: Entry) -> None:
    frame = encode_entry(entry)
    assert len(frame) == FRAME_HEADER_BYTES + len(entry.payload)
    assert decode_entry(frame) == entry


@settings(derandomize=True)
@given(entries, st.data())
def test_any_single_flipped_bit_is_detected(entry: Entry, data: st.DataObject) -> None:
    frame = bytearray(encode_entry(entry))
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    assert isinstance(check_frame(bytes(frame), 0), Damage)


def test_damage_kinds() -> None:
    frame = encode_entry(Entry(1, 1, EntryType.DATA, 0, 0, b"abc"))
    assert check_frame(frame[:10], 0) is Damage.SHORT
    assert check_frame(frame[:-1], 0) is Damage.SHORT
    impossible = frame[:4] + (2**31).to_bytes(4, "little") + frame[8:]
    assert check_frame(impossible, 0) is Damage.BAD_LENGTH


def test_decode_frames_reads_a_run_and_reports_the_first_bad_one() -> None:
    run = [Entry(i, 1, EntryType.DATA, i - 1, 0, b"x" * i) for i in range(1, 4)]
    buf = b"".join(encode_entry(e) for e in run)
    assert decode_frames(buf, 3) == run
    second = len(encode_entry(run[0]))
    damaged = buf[: second + 20] + bytes([buf[second + 20] ^ 0xFF]) + buf[second + 21 :]
    assert decode_frames(damaged, 3) == (second, Damage.BAD_CRC)


def test_segment_header_round_trip_and_damage() -> None:
    header = SegmentHeader(base_index=7, base_offset=5, prev_term=3, generation=2)
    data = header.encode()
    assert len(data) == SEGMENT_HEADER_BYTES
    assert SegmentHeader.decode(data) == header
    assert SegmentHeader.decode(data[:-1]) == "the segment header is short (47 of 48 bytes)"
    assert SegmentHeader.decode(data[:20] + b"\xff" + data[21:]) == (
        "the segment header checksum does not match"
    )
