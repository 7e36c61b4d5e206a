"""Snapshots: Raft paper §7, in DESIGN §4's form (the log is the state, so a snapshot
is metadata: last included index and term, configuration, next offset), and
MemoryStorage.compact, which makes them."""

import random

from logmesh_storage.log.entry import EntryType
from logmesh_storage.raft import (
    AppendEntriesResponse,
    ConfChange,
    ConfChangeType,
    Configuration,
    HardState,
    InstallSnapshot,
    MemoryStorage,
    RaftNode,
    SnapshotMeta,
)
from raft_test_net import FAST, Net


def _lagging_follower_after_compaction() -> Net:
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("c")
    net.propose("a", b"r0", b"r1", b"r2")
    net.propose("a", b"r3")
    net.storages["a"].compact(4)  # drops NOOP, r0, r1, r2
    return net


def test_compact_records_index_term_configuration_and_next_offset() -> None:
    """§7: the snapshot replaces the compacted prefix; DESIGN §4: it is metadata only."""
    net = Net(["a", "b"])
    net.elect("a")
    net.propose("a", b"r0", b"r1")
    net.nodes["a"].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "l"), 0)
    net.settle()
    net.propose("a", b"r2")
    storage = net.storages["a"]
    storage.compact(4)
    assert storage.snapshot() == SnapshotMeta(
        4, 1, Configuration(frozenset("ab"), frozenset("l")), 2
    )
    assert storage.first_index() == 5 and storage.term(4) == 1


def test_follower_behind_the_compacted_prefix_restarts_its_log_after_snapshot() -> None:
    """§7: the leader sends InstallSnapshot when the follower needs compacted entries;
    DESIGN §4: the follower restarts its log at the leader's first retained entry."""
    net = _lagging_follower_after_compaction()
    net.heal()
    net.tick(times=2)
    assert [m for m in net.sent if isinstance(m, InstallSnapshot) and m.to_id == "c"]
    assert net.snapshots_installed["c"] == [net.storages["a"].snapshot()]
    assert net.storages["c"].first_index() == 5
    assert net.log("c") == net.log("a")
    assert net.data("c") == [b"r3"]  # the rest lives in the snapshot, not re-applied
    assert net.storages["c"].initial_state()[0].commit_index >= 4


def test_offsets_continue_after_a_snapshot() -> None:
    """DESIGN §4: next_offset in the snapshot lets the follower's offsets stay dense."""
    net = _lagging_follower_after_compaction()
    net.heal()
    net.tick(times=2)
    net.crash("a")  # c may now lead; its offsets must follow the snapshot's
    net.isolate("a")
    net.tick(["b", "c"], times=40)
    leader = net.leader()
    net.propose(leader, b"r4")
    data = [e for e in net.applied["c"] if e.type is EntryType.DATA]
    assert [(e.payload, e.offset) for e in data] == [(b"r3", 3), (b"r4", 4)]


def test_snapshot_at_or_below_commit_is_not_installed() -> None:
    """§7: a snapshot that describes a prefix the follower already has changes nothing."""
    net = Net(["a", "b"])
    net.elect("a")
    net.propose("a", b"x")
    b = net.nodes["b"]
    b.step(InstallSnapshot(1, "a", "b", SnapshotMeta(1, 1, Configuration(frozenset("ab")), 0)))
    ready = b.ready()
    assert ready.snapshot is None
    (answer,) = ready.messages_after_persist
    assert isinstance(answer, AppendEntriesResponse) and answer.index == b.commit_index == 2


def test_installed_snapshot_sets_commit_and_configuration() -> None:
    """§7: the receiver discards its log and takes the snapshot's state (commit and
    membership); the hard state it persists commits at least the snapshot's index."""
    storage = MemoryStorage()
    node = RaftNode("d", storage, FAST, random.Random(1))
    meta = SnapshotMeta(10, 3, Configuration(frozenset("abc"), frozenset("d")), 7)
    node.step(InstallSnapshot(3, "a", "d", meta))
    ready = node.ready()
    assert ready.snapshot == meta
    assert ready.hard_state == HardState(3, None, 10)
    assert node.configuration == meta.configuration
    storage.save(ready.hard_state, ready.entries, ready.snapshot)
    node.advance(ready)
    assert node.status().applied_index == 10 and storage.last_index() == 10


def test_lost_install_snapshot_is_sent_again() -> None:
    """The snapshot is metadata, so a lost InstallSnapshot is simply resent when the
    follower next answers a heartbeat."""
    net = _lagging_follower_after_compaction()
    net.heal()
    dropped: list[InstallSnapshot] = []

    def drop_first(m: object) -> bool:
        if isinstance(m, InstallSnapshot) and not dropped:
            dropped.append(m)
            return True
        return False

    net.drop = drop_first
    net.tick(times=3)
    assert dropped and net.log("c") == net.log("a")


def test_snapshot_of_a_prefix_we_hold_only_advances_commit() -> None:
    """§7: "if an existing log entry has the same index and term as the snapshot's last
    included entry, retain the log entries following it"."""
    net = Net(["a", "b"])
    net.elect("a")
    net.isolate("b")
    net.propose("a", b"x", b"y")
    storage = net.storages["b"].copy()
    entries = net.storages["a"].entries(2, 4, 1 << 20)
    storage.save(None, entries, None)  # b holds 2..3 but does not know they committed
    node = RaftNode("b", storage, net.config, random.Random(1))
    meta = SnapshotMeta(2, 1, Configuration(frozenset("ab")), 1)
    node.step(InstallSnapshot(1, "a", "b", meta))
    ready = node.ready()
    assert ready.snapshot is None and node.commit_index == 2
    assert node.status().last_index == 3
