"""Invariants the core asserts (docs/raft.md): violations crash with AssertionError
instead of corrupting the log. Plus the pieces they rest on: RaftLog (§5.3 Log
Matching helpers) and Progress (flow control)."""

import random

import pytest
from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.raft import (
    AppendEntries,
    Configuration,
    HardState,
    MemoryStorage,
    RaftNode,
    SnapshotMeta,
)
from logmesh_storage.raft.progress import Progress, ProgressState
from logmesh_storage.raft.raft_log import RaftLog
from raft_test_net import FAST, Net, storage_with


def _entry(index: int, term: int) -> Entry:
    return Entry(index, term, EntryType.DATA, index - 1, 0, b"")


def test_two_leaders_in_one_term_crash_the_node() -> None:
    """§5.2 Election Safety: at most one leader per term; seeing another is fatal."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    with pytest.raises(AssertionError, match="two leaders"):
        net.nodes["a"].step(AppendEntries(1, "b", "a", 0, 0, (), 0))


def test_truncating_a_committed_entry_crashes() -> None:
    """§5.4 Leader Completeness: nothing at or below the commit index is overwritten."""
    log = RaftLog(storage_with("ab", [1, 1, 1], term=1, commit_index=2), 2, 0)
    with pytest.raises(AssertionError, match="committed"):
        log.append([_entry(2, 2)])


def test_term_never_goes_back() -> None:
    node = RaftNode("a", MemoryStorage.bootstrap(["a", "b"]), FAST, random.Random(1))
    node.step(AppendEntries(5, "b", "a", 0, 0, (), 0))
    with pytest.raises(AssertionError, match="term went back"):
        node.term = 4


def test_storage_refuses_to_lower_commit() -> None:
    storage = storage_with("ab", [1, 1], term=1, commit_index=2)
    with pytest.raises(AssertionError, match="commit went back"):
        storage.save(HardState(1, None, 1), [], None)


def test_storage_refuses_to_compact_uncommitted_entries() -> None:
    storage = storage_with("ab", [1, 1, 1], term=1, commit_index=1)
    with pytest.raises(AssertionError, match="uncommitted"):
        storage.compact(2)


def test_maybe_append_truncates_only_from_the_first_conflict() -> None:
    """§5.3: delete an existing entry only if it conflicts; skip ones already present
    (a reordered, older AppendEntries must not cut newer entries)."""
    log = RaftLog(storage_with("ab", [1, 1, 1, 1], term=1), 0, 0)
    assert log.maybe_append(0, 0, 0, [_entry(1, 1), _entry(2, 1)]) == 2
    assert log.last_index() == 4 and not log.unstable_entries
    assert log.maybe_append(2, 1, 0, [_entry(3, 2)]) == 3
    assert log.last_index() == 3 and log.term(3) == 2
    assert log.maybe_append(3, 1, 0, []) is None


def test_find_conflict_by_term_skips_a_whole_term() -> None:
    log = RaftLog(storage_with("ab", [1, 2, 2, 2, 2, 4], term=4), 0, 0)
    assert log.find_conflict_by_term(6, 3) == 5
    assert log.find_conflict_by_term(5, 1) == 1
    assert log.find_conflict_by_term(9, 9) == 6


def test_configuration_history_survives_restart_and_truncation() -> None:
    """Thesis §4.1: the configuration in force is the last one in the log."""
    config_entry = Entry(2, 1, EntryType.CONFIG, 0, 0, Configuration(frozenset("abc")).encode())
    storage = MemoryStorage(
        SnapshotMeta(0, 0, Configuration(frozenset("ab")), 0),
        entries=[_entry(1, 1), config_entry],
    )
    log = RaftLog(storage, 0, 0)
    assert log.configuration.voters == frozenset("abc")
    log.append([_entry(2, 2)])
    assert log.configuration.voters == frozenset("ab")


def test_progress_probe_pauses_until_answered() -> None:
    pr = Progress.new(5, max_inflight_messages=2)
    assert not pr.is_paused()
    pr.sent_entries(7)
    assert pr.is_paused() and pr.next_index == 5
    assert pr.maybe_update(7)
    pr.become_replicate()
    assert pr.state is ProgressState.REPLICATE and pr.next_index == 8


def test_progress_replicate_window_fills_and_frees() -> None:
    pr = Progress.new(1, max_inflight_messages=2)
    pr.become_replicate()
    pr.sent_entries(3)
    pr.sent_entries(6)
    assert pr.is_paused() and pr.next_index == 7
    pr.maybe_update(3)
    pr.inflights.free_to(3)
    assert not pr.is_paused()


def test_progress_ignores_stale_rejections() -> None:
    pr = Progress.new(10, max_inflight_messages=4)
    assert not pr.maybe_decrease_to(rejected_index=5, match_hint_index=2)  # not our probe
    assert pr.maybe_decrease_to(rejected_index=9, match_hint_index=3)
    assert pr.next_index == 4


def test_restart_reads_back_only_as_far_as_the_replaced_configuration() -> None:
    """Thesis §4.1: an uncommitted CONFIG entry found at restart can still be truncated,
    so the configuration it replaced (here a committed CONFIG entry) is recovered too."""

    def config(voters: str, index: int) -> Entry:
        return Entry(index, 1, EntryType.CONFIG, 0, 0, Configuration(frozenset(voters)).encode())

    storage = MemoryStorage(
        SnapshotMeta(0, 0, Configuration(frozenset("ab")), 0),
        entries=[_entry(1, 1), config("abc", 2), _entry(3, 1), config("abcd", 4)],
    )
    _, configuration = storage.initial_state()
    log = RaftLog(storage, 3, 0, configuration)
    assert log.configuration.voters == frozenset("abcd")
    log.append([_entry(4, 2)])
    assert log.configuration.voters == frozenset("abc")
