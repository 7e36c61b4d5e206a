"""Shared builders for the log engine tests (imported by path-less module name)."""

from __future__ import annotations

from logmesh_storage.log import Entry, EntryType


def make_entries(
    first_index: int,
    count: int,
    *,
    term: int = 1,
    first_offset: int = 0,
    payload_bytes: int = 10,
    config_every: int = 0,
    timestamp_ms: int = 0,
) -> list[Entry]:
    """`count` contiguous entries; every `config_every`-th one is a CONFIG entry."""
    entries, offset = [], first_offset
    for i in range(count):
        index = first_index + i
        is_config = config_every and index % config_every == 0
        type_ = EntryType.CONFIG if is_config else EntryType.DATA
        payload = bytes([index % 251]) * payload_bytes
        entry = Entry(index, term, type_, offset, timestamp_ms, payload)
        entries.append(entry)
        offset = entry.next_offset
    return entries
