"""The driver contract (Ready, docs/raft.md "ordering rules"), and crash safety of
Figure 2's persistent state (§5.1, §5.3): what may leave before persistence, what
only after, and that a Ready is handed out once."""

import random

import pytest
from logmesh_storage.log.entry import EntryType
from logmesh_storage.raft import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    MemoryStorage,
    RaftNode,
    Role,
    SoftState,
)
from raft_test_net import FAST, Net


def test_leader_appends_leave_at_once_follower_acks_after_persist() -> None:
    """Thesis §10.2.1: the leader may send before its own write; a follower's
    acknowledgement means "durable", so it waits for the persist step."""
    net = Net(["a", "b"])
    net.elect("a")
    net.nodes["a"].propose([b"x"], 0)
    ready = net.nodes["a"].ready()
    assert ready.entries and any(isinstance(m, AppendEntries) for m in ready.messages)
    append = next(m for m in ready.messages if isinstance(m, AppendEntries))
    b = net.nodes["b"]
    b.step(append)
    follower_ready = b.ready()
    assert [e.index for e in follower_ready.entries] == [2]
    assert not any(isinstance(m, AppendEntriesResponse) for m in follower_ready.messages)
    assert any(isinstance(m, AppendEntriesResponse) for m in follower_ready.messages_after_persist)


def test_committed_entries_are_handed_out_once() -> None:
    """The core tracks applied as "handed out in a Ready and advanced"."""
    net = Net(["a"])
    net.elect("a")
    net.propose("a", b"x")
    net.propose("a", b"y")
    assert net.data("a") == [b"x", b"y"]
    assert not net.nodes["a"].has_ready()
    assert net.nodes["a"].status().applied_index == 3


def test_soft_state_change_makes_a_ready() -> None:
    """The driver learns role and leader changes (health, discovery tags) from Ready."""
    node = RaftNode("a", MemoryStorage.bootstrap(["a", "b"]), FAST, random.Random(1))
    node.step(Heartbeat(1, "b", "a", 0))
    ready = node.ready()
    assert ready.soft_state == SoftState("b", Role.FOLLOWER)


def test_ready_twice_without_advance_is_a_driver_bug() -> None:
    node = RaftNode("a", MemoryStorage.bootstrap(["a"]), FAST, random.Random(1))
    for _ in range(20):
        node.tick()
    node.ready()
    with pytest.raises(AssertionError):
        node.ready()


def test_crash_before_persist_loses_nothing_acknowledged() -> None:
    """§5.3 + Ready: entries not yet persisted may vanish in a crash, but they were
    never acknowledged, so nothing committed is lost and the cluster converges."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.propose("a", b"committed")
    net.nodes["b"].step(
        AppendEntries(1, "a", "b", 2, 1, (net.storages["a"].entries(2, 3, 100)[0],), 2)
    )
    net.crash("b")  # the Ready with anything new was never persisted
    net.tick(times=3)
    net.propose("a", b"after")
    assert net.log("a") == net.log("b") == net.log("c")
    stored = net.storages["b"].entries(1, net.storages["b"].last_index() + 1, 1 << 20)
    assert [e.payload for e in stored if e.type is EntryType.DATA] == [b"committed", b"after"]


def test_restart_from_durable_state_keeps_term_commit_and_log() -> None:
    """Figure 2: currentTerm, votedFor and log[] are persistent; a restarted node comes
    back with them (commit as persisted) and catches up."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.propose("a", b"x", b"y")
    net.tick(times=1)
    net.crash("c")
    c = net.nodes["c"]
    assert c.term == 1 and c.status().last_index == 3 and c.commit_index == 3
    net.propose("a", b"z")
    assert net.data("c")[-1] == b"z"


def test_acceptance_queued_in_an_old_term_is_dropped_when_a_new_term_truncates() -> None:
    """§5.3 + Ready rules: an AppendEntriesResponse says "durable up to index". A follower
    that accepted entries in term t, then (before its next Ready) adopted term t+1 and
    truncated them, must not send the term-t acceptance after persisting the shorter log
    (regression: simulator seed 10147)."""
    from logmesh_storage.log.entry import Entry
    from raft_test_net import storage_with

    follower = RaftNode("c", storage_with("abc", [1], term=1), FAST, random.Random(1))
    old = [Entry(i, 1, EntryType.DATA, i - 1, 0, b"old") for i in (2, 3)]
    follower.step(AppendEntries(1, "a", "c", 1, 1, tuple(old), 1))
    # The new leader of term 2 has a different entry at index 2: the follower truncates.
    new = Entry(2, 2, EntryType.DATA, 1, 0, b"new")
    follower.step(AppendEntries(2, "b", "c", 1, 1, (new,), 1))

    ready = follower.ready()
    assert [e.payload for e in ready.entries] == [b"new"]
    accepted = [
        m
        for m in ready.messages_after_persist
        if isinstance(m, AppendEntriesResponse) and not m.reject
    ]
    assert [(m.to_id, m.term, m.index) for m in accepted] == [("b", 2, 2)]
