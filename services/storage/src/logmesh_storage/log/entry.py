"""The entry: the one record type shared by the log engine and the Raft core.

The log *is* the Raft log (DESIGN §3), so an entry carries its Raft coordinates
(index, term), its type, and the record offset. An entry holds one client record (DATA), many
(RECORDS: the records of one batch produce, in one frame, one checksum, one Raft entry), or none
(NOOP, CONFIG). This module is pure data: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import accumulate


class EntryType(IntEnum):
    """What an entry is for. The numbers are part of the on-disk format."""

    DATA = 0  # a client record; consumers see it at `offset`
    NOOP = 1  # the empty entry a new leader appends to commit its term
    CONFIG = 2  # a membership change; payload is the encoded configuration
    RECORDS = 3  # client records at offset, offset + 1, ...; payload is encode_records(values)


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of the replicated log.

    index: the Raft index, dense, from 1.
    term: the term of the leader that appended it, >= 1.
    type: see EntryType.
    offset: for DATA, the record's offset (offsets are dense over records, from 0); for
        RECORDS, the offset of its first record (the others follow it).
        For NOOP and CONFIG, the offset the next data entry will get: control
        entries take no offset, and `offset` stays non-decreasing along the log,
        so the next offset after any entry is `next_offset(entry)`.
    timestamp_ms: unix time in ms when the leader appended it (for retention by
        age and for the record's append_time); set by the leader's driver.
    payload: the record value (DATA), the encoded configuration (CONFIG), or b"".
    """

    index: int
    term: int
    type: EntryType
    offset: int
    timestamp_ms: int
    payload: bytes

    def __post_init__(self) -> None:
        if self.index < 1:
            raise ValueError(f"entry index must be >= 1, got {self.index}")
        if self.term < 1:
            raise ValueError(f"entry term must be >= 1, got {self.term}")
        if self.offset < 0:
            raise ValueError(f"entry offset must be >= 0, got {self.offset}")
        if self.type is EntryType.NOOP and self.payload:
            raise ValueError("a NOOP entry carries no payload")
        if self.type is EntryType.RECORDS and (why := records_damage(self.payload)):
            raise ValueError(f"a RECORDS entry with a bad payload: {why}")

    @property
    def record_count(self) -> int:
        """How many client records the entry holds."""
        return record_count(self.type, self.payload)

    @property
    def next_offset(self) -> int:
        """The offset the next record after this entry gets."""
        return self.offset + record_count(self.type, self.payload)


# The RECORDS payload: u32 count | count x u32 value length | the values, little-endian.
_COUNT = struct.Struct("<I")
RECORDS_HEADER_BYTES = _COUNT.size
_DATA = EntryType.DATA
_RECORDS = EntryType.RECORDS


def encode_records(values: Sequence[bytes]) -> bytes:
    """The payload of a RECORDS entry holding `values` (at least one)."""
    assert values, "a RECORDS entry holds at least one record"
    count = len(values)
    return b"".join((_COUNT.pack(count), struct.pack(f"<{count}I", *map(len, values)), *values))


def record_count(type_: int, payload: bytes) -> int:
    """Records in an entry of `type_` with `payload` (which is known well-formed)."""
    if type_ == _DATA:
        return 1
    if type_ == _RECORDS:
        return int(_COUNT.unpack_from(payload)[0])
    return 0


def records_damage(payload: bytes) -> str | None:
    """Why `payload` is not a valid RECORDS payload, or None."""
    if len(payload) < RECORDS_HEADER_BYTES:
        return f"{len(payload)} bytes, too short for a record count"
    (count,) = _COUNT.unpack_from(payload)
    values_at = RECORDS_HEADER_BYTES * (1 + count)
    if count < 1 or values_at > len(payload):
        return f"a record count of {count} in {len(payload)} bytes"
    total = sum(struct.unpack_from(f"<{count}I", payload, RECORDS_HEADER_BYTES))
    if values_at + total != len(payload):
        return f"{count} records of {total} bytes in {len(payload) - values_at} bytes"
    return None


def decode_records(payload: bytes, start: int = 0, stop: int | None = None) -> list[bytes]:
    """Values start..stop-1 of a well-formed RECORDS payload (all by default): the lengths
    are unpacked in one call, and only the values asked for are sliced."""
    (count,) = _COUNT.unpack_from(payload)
    stop = count if stop is None else min(stop, count)
    if start >= stop:
        return []
    lengths = struct.unpack_from(f"<{stop}I", payload, RECORDS_HEADER_BYTES)
    ends = list(accumulate(lengths, initial=RECORDS_HEADER_BYTES * (1 + count)))
    return [payload[ends[k] : ends[k + 1]] for k in range(start, stop)]


_new = object.__new__
_set_index, _set_term, _set_type, _set_offset, _set_timestamp_ms, _set_payload = (
    Entry.__dict__[name].__set__
    for name in ("index", "term", "type", "offset", "timestamp_ms", "payload")
)


def make_entry(  # noqa: PLR0917 (the positional order of Entry itself)
    index: int, term: int, type_: EntryType, offset: int, timestamp_ms: int, payload: bytes
) -> Entry:
    """Entry(...) without __post_init__'s checks, about twice as fast: a frozen dataclass's
    __init__ goes through object.__setattr__ per field, and the hot paths (a proposal of
    many records, decoding a batch of frames) build an entry per record. Only for values
    already known valid: a CRC-checked frame this log wrote, or the leader's own proposal."""
    entry = _new(Entry)
    _set_index(entry, index)
    _set_term(entry, term)
    _set_type(entry, type_)
    _set_offset(entry, offset)
    _set_timestamp_ms(entry, timestamp_ms)
    _set_payload(entry, payload)
    return entry


@dataclass(frozen=True, slots=True)
class RecordBlock:
    """Consecutive DATA records as columns (the consumers' read path, Log.read_records):
    record k has offset offsets[k], term terms[k], append time timestamps_ms[k] and value
    payloads[k]. No Entry per record: a consumer reading back a large log builds one
    protobuf per record straight from these."""

    offsets: Sequence[int]
    terms: Sequence[int]
    timestamps_ms: Sequence[int]
    payloads: list[bytes]

    def __len__(self) -> int:
        return len(self.payloads)

    @property
    def next_offset(self) -> int:
        """The offset after the last record (the first record's offset when empty is not
        defined: callers check len first)."""
        return self.offsets[-1] + 1
