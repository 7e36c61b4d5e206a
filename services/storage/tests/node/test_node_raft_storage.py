"""The Raft storage adapter over the real log engine: what Raft saves is what it reads back,
after a reopen too, through conflicts, snapshot installs and retention."""

from __future__ import annotations

from pathlib import Path

import pytest
from logmesh_storage.log.config import LogConfig
from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.log.errors import OffsetOutOfRange, OffsetTruncated
from logmesh_storage.node.errors import NodeStateError
from logmesh_storage.node.raft_storage import LogRaftStorage
from logmesh_storage.raft.errors import IndexUnavailable, LogCompacted
from logmesh_storage.raft.types import Configuration, HardState, SnapshotMeta

BOOT = Configuration(voters=frozenset({"storage-0"}))
GROWN = Configuration(voters=frozenset({"storage-0"}), learners=frozenset({"storage-1"}))


def data(index: int, term: int, offset: int, value: bytes = b"v", ts: int = 1000) -> Entry:
    return Entry(index, term, EntryType.DATA, offset, ts, value)


def config_entry(index: int, term: int, offset: int, configuration: Configuration) -> Entry:
    return Entry(index, term, EntryType.CONFIG, offset, 1000, configuration.encode())


def open_storage(path: Path, config: LogConfig | None = None) -> LogRaftStorage:
    return LogRaftStorage.open(path, config or LogConfig(), bootstrap_voters=("storage-0",))


def test_a_bootstrapped_node_starts_empty_with_itself_as_voter(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    assert storage.is_new()
    assert storage.initial_state() == (HardState(), BOOT)
    assert storage.snapshot() == SnapshotMeta(0, 0, BOOT, 0)
    assert (storage.first_index(), storage.last_index(), storage.term(0)) == (1, 0, 0)


def test_a_joining_node_starts_with_no_configuration(tmp_path: Path) -> None:
    storage = LogRaftStorage.open(tmp_path, LogConfig())
    assert storage.initial_state() == (HardState(), Configuration())


def test_saved_entries_and_hard_state_survive_a_reopen(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    entries = [data(1, 1, 0, b"a"), config_entry(2, 1, 1, GROWN), data(3, 1, 1, b"b")]
    storage.save(HardState(1, "storage-0", 3), entries, None)
    storage.close()
    again = open_storage(tmp_path)
    assert not again.is_new()
    assert again.initial_state() == (HardState(1, "storage-0", 3), GROWN)
    assert again.entries(1, 4, 1 << 20) == entries
    assert [again.term(i) for i in range(4)] == [0, 1, 1, 1]
    assert again.next_offset_after(3) == 2
    assert [e.payload for e in again.read_records(0, 10, max_index=3)] == [b"a", b"b"]


def test_a_conflicting_suffix_is_replaced(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    storage.save(HardState(1, None, 1), [data(1, 1, 0), data(2, 1, 1), data(3, 1, 2)], None)
    storage.save(HardState(2, None, 1), [data(2, 2, 1, b"new")], None)
    assert storage.last_index() == 2
    assert storage.entries(1, 3, 1 << 20)[1] == data(2, 2, 1, b"new")
    with pytest.raises(IndexUnavailable):
        storage.term(3)


def test_entries_respect_the_byte_budget_but_return_at_least_one(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    storage.save(None, [data(i, 1, i - 1, b"x" * 100) for i in range(1, 6)], None)
    assert len(storage.entries(1, 6, 250)) == 2
    assert len(storage.entries(1, 6, 0)) == 1


def test_reads_only_see_entries_up_to_max_index(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    storage.save(None, [data(1, 1, 0, b"a"), data(2, 1, 1, b"b")], None)
    assert [e.payload for e in storage.read_records(0, 10, max_index=1)] == [b"a"]
    with pytest.raises(OffsetOutOfRange):
        storage.read_records(5, 1, max_index=2)


def test_a_snapshot_restarts_the_log_and_keeps_its_configuration(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    storage.save(HardState(1, None, 0), [data(1, 1, 0), data(2, 1, 1)], None)
    snapshot = SnapshotMeta(50, 3, GROWN, 40)
    storage.save(HardState(3, None, 50), [data(51, 3, 40, b"after")], snapshot)
    storage.close()
    again = open_storage(tmp_path)
    assert again.snapshot() == snapshot
    assert again.initial_state() == (HardState(3, None, 50), GROWN)
    assert (again.first_index(), again.last_index(), again.term(50)) == (51, 51, 3)
    assert again.first_offset() == 40
    with pytest.raises(LogCompacted):
        again.entries(50, 52, 1 << 20)
    with pytest.raises(OffsetTruncated):
        again.read_records(39, 1, max_index=51)
    assert [e.payload for e in again.read_records(40, 5, max_index=51)] == [b"after"]


def test_retention_drops_old_segments_and_remembers_the_configuration(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes_max=300, retention_bytes_max=600)
    storage = open_storage(tmp_path, config)
    entries = [config_entry(1, 1, 0, GROWN)]
    entries += [data(i, 1, i - 2, b"x" * 100) for i in range(2, 30)]
    for entry in entries:  # one append per entry, so segments roll
        storage.save(None, [entry], None)
    storage.save(HardState(1, None, 29), [], None)
    assert storage.apply_retention(29, now_ms=2000)
    first = storage.first_index()
    assert first > 2
    assert storage.snapshot().configuration == GROWN
    assert storage.first_offset() == entries[first - 1].offset
    storage.close()
    again = open_storage(tmp_path, config)
    assert again.first_index() == first
    assert again.initial_state()[1] == GROWN
    assert again.snapshot().configuration == GROWN


def test_a_log_without_its_configuration_file_is_refused(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    storage.save(None, [data(1, 1, 0)], None)
    storage.close()
    (tmp_path / "raft" / "configs.json").unlink()
    with pytest.raises(NodeStateError, match=r"configs\.json is missing"):
        open_storage(tmp_path)


def test_a_commit_only_change_waits_but_term_and_vote_are_written_at_once(
    tmp_path: Path,
) -> None:
    storage = open_storage(tmp_path)
    storage.commit_write_interval_s = 3600.0  # no periodic write during the test
    storage.save(HardState(2, "storage-0", 0), [data(1, 2, 0), data(2, 2, 1)], None)
    assert storage.hard_state_needs_write(HardState(3, "storage-0", 0))
    assert storage.hard_state_needs_write(HardState(2, None, 0))
    assert not storage.hard_state_needs_write(HardState(2, "storage-0", 2))
    storage.note_hard_state(HardState(2, "storage-0", 2))
    crashed = open_storage(tmp_path)  # without close(): the commit index was not written
    assert crashed.initial_state()[0] == HardState(2, "storage-0", 0)
    storage.close()  # a clean stop writes it
    assert open_storage(tmp_path).initial_state()[0] == HardState(2, "storage-0", 2)


def test_the_commit_index_is_never_below_the_base_after_a_reopen(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    storage.save(HardState(3, None, 0), [], None)
    snapshot = SnapshotMeta(50, 3, GROWN, 40)
    storage.save(None, [], snapshot)  # as if the crash came before the hard state write
    assert open_storage(tmp_path).initial_state()[0].commit_index == 50


def test_a_commit_only_change_noted_after_its_write_interval_passed_is_not_fatal(
    tmp_path: Path,
) -> None:
    """The driver asks hard_state_needs_write() and then notes the hard state; the write
    interval may run out in between (a GIL switch is enough). That must not stop the node."""
    storage = open_storage(tmp_path)
    storage.save(HardState(2, "storage-0", 0), [data(1, 2, 0)], None)
    storage.commit_write_interval_s = 3600.0
    assert not storage.hard_state_needs_write(HardState(2, "storage-0", 1))
    storage.commit_write_interval_s = 0.0  # the interval runs out between the two calls
    storage.note_hard_state(HardState(2, "storage-0", 1))
    with pytest.raises(AssertionError):
        storage.note_hard_state(HardState(3, "storage-0", 1))  # a term change never waits
    storage.close()
