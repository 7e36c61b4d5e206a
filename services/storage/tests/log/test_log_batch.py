"""Batches encoded once: the leader's encode_batch, the follower's decode_batch."""

from __future__ import annotations

import pytest
from log_helpers import make_entries
from logmesh_storage.log import (
    FrameDamaged,
    Log,
    LogConfig,
    MemoryFileSystem,
    NotContiguous,
    decode_batch,
    encode_batch,
    encode_entry,
)


def test_encoded_batch_is_the_frames_joined() -> None:
    entries = make_entries(1, 5, config_every=2)
    batch = encode_batch(entries)
    assert batch.data == b"".join(encode_entry(e) for e in entries)
    assert (batch.first_index, len(batch)) == (1, 5)


def test_decode_batch_indexes_received_frames_without_reencoding() -> None:
    entries = make_entries(4, 3)
    received = decode_batch(encode_batch(entries).data)
    assert received == encode_batch(entries)


def test_decode_batch_rejects_damage_and_gaps() -> None:
    data = encode_batch(make_entries(1, 3)).data
    with pytest.raises(FrameDamaged, match="not a valid log frame at byte 0"):
        decode_batch(data[:5] + bytes([data[5] ^ 1]) + data[6:])
    gap = encode_entry(make_entries(1, 1)[0]) + encode_entry(make_entries(3, 1)[0])
    with pytest.raises(NotContiguous, match="does not continue the batch"):
        decode_batch(gap)
    with pytest.raises(FrameDamaged, match="an empty batch"):
        decode_batch(b"")


def test_encode_batch_rejects_entries_that_do_not_follow_each_other() -> None:
    entries = make_entries(1, 3)
    with pytest.raises(NotContiguous, match="entry index 3 does not follow 1"):
        encode_batch([entries[0], entries[2]])


def test_log_appends_an_encoded_batch_and_checks_the_seam() -> None:
    fs = MemoryFileSystem()
    log = Log.open(fs, "/log", LogConfig())
    log.append(encode_batch(make_entries(1, 3)))
    with pytest.raises(NotContiguous, match="entry index 5 does not follow 3"):
        log.append(encode_batch(make_entries(5, 1, first_offset=3)))
    with pytest.raises(NotContiguous, match="entry 4 has offset 7, not 3"):
        log.append(encode_batch(make_entries(4, 1, first_offset=7)))
    log.append(decode_batch(encode_batch(make_entries(4, 2, first_offset=3)).data))
    assert Log.open(fs, "/log", LogConfig()).entries(1, 6) == make_entries(1, 5)
