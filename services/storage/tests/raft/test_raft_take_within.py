"""take_within: the byte limit of RaftLog.entries, whole runs at once when they fit."""

from __future__ import annotations

from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.raft.raft_log import payload_bytes, take_within


def _entries(*sizes: int) -> list[Entry]:
    return [Entry(i + 1, 1, EntryType.DATA, i, 0, b"x" * n) for i, n in enumerate(sizes)]


def test_a_run_that_fits_is_taken_whole() -> None:
    run = _entries(3, 3, 3)
    assert take_within([], run, 9) == run
    assert payload_bytes(run) == 9


def test_a_run_that_does_not_fit_stops_before_the_limit() -> None:
    run = _entries(3, 3, 3)
    assert take_within([], run, 8) == run[:2]


def test_the_first_entry_is_taken_even_when_larger_than_the_limit() -> None:
    run = _entries(10, 1)
    assert take_within([], run, 4) == run[:1]


def test_entries_already_taken_count_toward_the_limit() -> None:
    stored, unstable = _entries(5), _entries(5, 3, 3)[1:]
    assert take_within(list(stored), unstable, 8) == [*stored, unstable[0]]
    assert take_within(list(stored), unstable, 7) == stored
