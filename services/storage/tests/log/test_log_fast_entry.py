"""The fast entry paths: make_entry builds the same Entry as Entry(), and decode_entry checks
a frame in one pass yet still refuses damaged frames and impossible entries."""

from __future__ import annotations

import dataclasses

import google_crc32c
import pytest
from logmesh_storage.log.entry import Entry, EntryType, make_entry
from logmesh_storage.log.store import FrameDamaged, decode_entry, encode_entry


def test_make_entry_builds_an_equal_frozen_entry() -> None:
    made = make_entry(7, 2, EntryType.DATA, 5, 1000, b"x")
    assert made == Entry(7, 2, EntryType.DATA, 5, 1000, b"x")
    assert hash(made) == hash(Entry(7, 2, EntryType.DATA, 5, 1000, b"x"))
    assert made.next_offset == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.index = 8  # type: ignore[misc]


def test_decode_entry_round_trips_every_type() -> None:
    for entry in (
        Entry(1, 1, EntryType.DATA, 0, 5, b"payload"),
        Entry(2, 1, EntryType.NOOP, 1, 5, b""),
        Entry(3, 2, EntryType.CONFIG, 1, 5, b'{"voters":[]}'),
    ):
        assert decode_entry(encode_entry(entry)) == entry


def _with_index(frame: bytes, index: int) -> bytes:
    """The frame with another index and a CRC recomputed over it: valid, yet impossible."""
    body = bytearray(frame[4:])
    body[4:12] = index.to_bytes(8, "little")  # length 4, then index
    crc: int = google_crc32c.value(bytes(body))
    return crc.to_bytes(4, "little") + bytes(body)


def test_decode_entry_refuses_an_impossible_entry_under_a_valid_checksum() -> None:
    frame = encode_entry(Entry(1, 1, EntryType.DATA, 0, 0, b"a"))
    assert decode_entry(_with_index(frame, 4)).index == 4
    with pytest.raises(FrameDamaged, match="impossible entry"):
        decode_entry(_with_index(frame, 0))


def test_decode_entry_tells_a_short_frame_from_an_impossible_length() -> None:
    frame = encode_entry(Entry(1, 1, EntryType.DATA, 0, 0, b"abc"))
    with pytest.raises(FrameDamaged, match="ends inside a frame"):
        decode_entry(frame[:-2])
    bad_length = frame[:4] + (1).to_bytes(4, "little") + frame[8:]
    with pytest.raises(FrameDamaged, match="length is impossible"):
        decode_entry(bad_length)
