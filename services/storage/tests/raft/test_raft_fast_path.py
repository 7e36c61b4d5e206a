"""The driver's fast paths into the core: messages taken between Readies (take_messages),
entries applied between Readies (applied_to), and deferred commit notices
(RaftConfig.defer_commit_notices with send_commit_notices)."""

from __future__ import annotations

import random
from dataclasses import replace

from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.raft import RaftNode
from logmesh_storage.raft.messages import AppendEntries, Heartbeat
from logmesh_storage.raft.types import Role
from raft_test_net import FAST, Net, storage_with


def appends_to(net: Net, to_id: str) -> list[AppendEntries]:
    return [m for m in net.sent if isinstance(m, AppendEntries) and m.to_id == to_id]


def test_messages_taken_between_readies_leave_before_the_ready_is_persisted() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    leader = net.nodes["a"]
    leader.propose([b"one"], 0)
    ready = leader.ready()  # being persisted: no second Ready until advance()
    assert {m.to_id for m in ready.messages} == {"b", "c"}
    leader.propose([b"two"], 0)
    taken = leader.take_messages()
    assert all(isinstance(m, AppendEntries) for m in taken)
    appends = [m for m in taken if isinstance(m, AppendEntries)]
    assert [(m.to_id, [e.payload for e in m.entries]) for m in appends] == [
        ("b", [b"two"]),
        ("c", [b"two"]),
    ]
    assert leader.take_messages() == []  # drained: no later Ready sends them again
    net.storages["a"].save(ready.hard_state, ready.entries, ready.snapshot)
    leader.advance(ready)
    assert all(not isinstance(m, AppendEntries) for m in leader.ready().messages)


def test_entries_applied_between_readies_are_not_handed_out_again() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    leader = net.nodes["a"]
    leader.propose([b"w"], 0)
    net.process("a")  # the leader's own copy is durable; its AppendEntries are queued
    while net.queue:  # the followers answer; the leader commits, but runs no Ready
        message = net.queue.popleft()
        net.nodes[message.to_id].step(message)
        if message.to_id != "a":
            net.process(message.to_id)
    commit_index = leader.commit_index
    assert commit_index > leader.status().applied_index
    leader.applied_to(commit_index)  # the driver applied them, durable, between Readies
    assert leader.status().applied_index == commit_index
    assert leader.ready().committed_entries == ()


def test_deferred_commit_notices_wait_for_the_driver() -> None:
    net = Net(["a", "b", "c"], config=replace(FAST, defer_commit_notices=True))
    net.elect("a")
    leader = net.nodes["a"]
    sent_before = len(appends_to(net, "b"))
    net.propose("a", b"x")
    # One AppendEntries carried the entry; the commit that followed sent no empty one.
    assert [len(m.entries) for m in appends_to(net, "b")[sent_before:]] == [1]
    assert net.nodes["b"].commit_index < leader.commit_index
    assert leader.commit_notices_owed()
    leader.send_commit_notices()
    net.settle()
    assert net.nodes["b"].commit_index == net.nodes["c"].commit_index == leader.commit_index
    assert not leader.commit_notices_owed()


def test_next_append_carries_a_deferred_commit_and_makes_its_notice_needless() -> None:
    net = Net(["a", "b", "c"], config=replace(FAST, defer_commit_notices=True))
    net.elect("a")
    leader = net.nodes["a"]
    net.propose("a", b"x")
    net.propose("a", b"y")  # its AppendEntries tells b and c that x committed
    assert net.nodes["b"].commit_index >= leader.commit_index - 1
    net.nodes["a"].tick()  # a heartbeat carries the commit index too
    net.settle()
    assert not leader.commit_notices_owed()
    assert net.nodes["b"].commit_index == leader.commit_index
    assert any(isinstance(m, Heartbeat) for m in net.sent)


def test_without_deferral_followers_learn_the_commit_at_once() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.propose("a", b"x")
    leader = net.nodes["a"]
    assert net.nodes["b"].commit_index == net.nodes["c"].commit_index == leader.commit_index
    assert not leader.commit_notices_owed()
    net.nodes["b"].send_commit_notices()  # a no-op on a follower
    assert net.nodes["b"].take_messages() == []


def test_a_notice_for_an_older_commit_is_not_sent_for_a_newer_one() -> None:
    net = Net(["a", "b", "c"], config=replace(FAST, defer_commit_notices=True))
    net.elect("a")
    leader = net.nodes["a"]
    net.propose("a", b"x")
    leader.send_commit_notices()
    net.settle()
    noticed = leader.commit_index
    net.propose("a", b"y")  # committed after the driver set its timer for `noticed`
    assert leader.commit_index > noticed
    sent_before = len(net.sent)
    leader.send_commit_notices(noticed)  # the followers were sent `noticed` already
    assert leader.take_messages() == []
    assert len(net.sent) == sent_before
    assert leader.commit_notices_owed()  # the newer commit waits for its own timer


def heartbeats_to(net: Net, to_id: str) -> int:
    return sum(1 for m in net.sent if isinstance(m, Heartbeat) and m.to_id == to_id)


def test_quiet_heartbeats_skip_a_follower_that_was_just_sent_entries() -> None:
    net = Net(["a", "b", "c"], config=replace(FAST, quiet_heartbeats=True))
    net.elect("a")
    net.tick(["a"])  # clears what the election sent
    before = heartbeats_to(net, "b")
    net.propose("a", b"x")
    net.tick(["a"])  # b was sent an AppendEntries since the last round: no heartbeat
    assert heartbeats_to(net, "b") == before
    net.tick(["a"])  # nothing sent since: the heartbeat goes out again
    assert heartbeats_to(net, "b") == before + 1
    assert net.nodes["a"].role is Role.LEADER  # check-quorum counted the appends


def test_quiet_heartbeats_still_carry_a_read_index_round() -> None:
    net = Net(["a", "b", "c"], config=replace(FAST, quiet_heartbeats=True))
    net.elect("a")
    net.tick(["a"])
    leader = net.nodes["a"]
    leader.propose([b"x"], 0)  # an AppendEntries to b and c...
    before = heartbeats_to(net, "b")
    leader.read_index(b"ctx")  # ...yet the read's round must reach them
    net.settle()
    assert heartbeats_to(net, "b") == before + 1
    assert [r.context for r in net.read_states["a"]] == [b"ctx"]


def test_loud_heartbeats_go_out_every_round() -> None:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.tick(["a"])
    before = heartbeats_to(net, "b")
    net.propose("a", b"x")
    net.tick(["a"])
    assert heartbeats_to(net, "b") == before + 1


def test_a_tail_replaced_while_its_ready_is_persisted_is_not_written_again_from_before() -> None:
    """A driver steps messages while it persists a Ready. If a new leader replaces part of the
    tail that Ready is writing, the next Ready must start at the replacement: the prefix the
    first Ready wrote is durable and unchanged. Starting over at the first Ready's start
    would rewrite (truncate, then append) entries that may be committed: the storage refuses
    that, and a crash between the two would lose them (found by the failover test: a paused
    leader came back and stopped with "truncating committed entries")."""
    storage = storage_with("abc", terms=[], term=1)
    follower = RaftNode("c", storage, FAST, random.Random(1))
    entries = tuple(Entry(i, 1, EntryType.DATA, i - 1, 0, b"old") for i in range(1, 6))
    follower.step(AppendEntries(1, "a", "c", 0, 0, entries, commit_index=2))
    writing = follower.ready()  # entries 1-5, commit 2: being persisted
    assert [e.index for e in writing.entries] == [1, 2, 3, 4, 5]
    assert writing.hard_state is not None and writing.hard_state.commit_index == 2
    # Meanwhile b leads term 2 and replaces entries 4 and 5 (3 is as far as b got).
    replacement = Entry(4, 2, EntryType.NOOP, 3, 0, b"")
    follower.step(AppendEntries(2, "b", "c", 3, 1, (replacement,), commit_index=2))
    storage.save(writing.hard_state, writing.entries, writing.snapshot)
    follower.advance(writing)
    following = follower.ready()
    assert [(e.index, e.term) for e in following.entries] == [(4, 2)]
    storage.save(following.hard_state, following.entries, following.snapshot)
    follower.advance(following)
    assert [(e.index, e.term) for e in storage.entries(1, 5, 1 << 20)] == [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 2),
    ]
    assert follower.status().last_index == 4
