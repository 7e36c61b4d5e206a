"""The entry: the one record type shared by the log engine and the Raft core.

The log *is* the Raft log (DESIGN §3), so an entry carries its Raft coordinates
(index, term), its type, and the record offset. This module is pure data: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum


class EntryType(IntEnum):
    """What an entry is for. The numbers are part of the on-disk format."""

    DATA = 0  # a client record; consumers see it at `offset`
    NOOP = 1  # the empty entry a new leader appends to commit its term
    CONFIG = 2  # a membership change; payload is the encoded configuration


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of the replicated log.

    index: the Raft index, dense, from 1.
    term: the term of the leader that appended it, >= 1.
    type: see EntryType.
    offset: for DATA, the record's offset (dense over data entries, from 0).
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

    @property
    def next_offset(self) -> int:
        """The offset the next data entry after this one gets."""
        return self.offset + 1 if self.type is EntryType.DATA else self.offset


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
