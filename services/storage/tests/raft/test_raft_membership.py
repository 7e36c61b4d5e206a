"""Membership changes, one server at a time: Raft paper §6 and thesis chapter 4
(§4.1 single-server changes that take effect on append, §4.2.1 learners catching up
before they vote, §4.2.2 removing the leader)."""

import pytest
from logmesh_storage.raft import (
    ConfChange,
    ConfChangeInProgress,
    ConfChangeType,
    Configuration,
    InvalidConfChange,
    RaftConfig,
    RequestVoteResponse,
    Role,
)
from raft_test_net import Net

ADD, PROMOTE, REMOVE = ConfChangeType.ADD_LEARNER, ConfChangeType.PROMOTE, ConfChangeType.REMOVE


def _change(net: Net, leader: str, kind: ConfChangeType, node_id: str) -> int:
    index = net.nodes[leader].propose_conf_change(ConfChange(kind, node_id), timestamp_ms=5)
    net.settle()
    return index


def test_new_node_joins_as_learner_and_catches_up_without_voting() -> None:
    """Thesis §4.2.1: a new server joins as a non-voting learner and receives the log."""
    net = Net(["a", "b", "c"], empty=["d"])
    net.elect("a")
    net.propose("a", b"before")
    _change(net, "a", ADD, "d")
    net.propose("a", b"after")
    assert net.data("d") == [b"before", b"after"]
    assert net.nodes["d"].configuration == Configuration(frozenset("abc"), frozenset("d"))
    net.tick(["d"], times=100)
    assert (
        net.nodes["d"].status().role is Role.FOLLOWER
        and net.nodes["a"].status().role is Role.LEADER
    )


def test_learner_acks_do_not_count_toward_commit() -> None:
    """Thesis §4.2.1: learners are not part of any majority."""
    net = Net(["a", "b"], learners=["l"])
    net.elect("a")
    net.isolate("b")
    net.nodes["a"].propose([b"x"], 0)
    net.settle()
    assert net.log("l")[-1][0] == 2  # the learner has it
    assert net.nodes["a"].commit_index == 1  # but a alone of {a, b} is no majority


def test_promoted_learner_votes_and_counts() -> None:
    """Thesis §4.1: after the change, the new voter is part of every majority."""
    net = Net(["a", "b"], learners=["l"])
    net.elect("a")
    _change(net, "a", PROMOTE, "l")
    assert net.nodes["l"].configuration.voters == frozenset("abl")
    net.isolate("b")
    net.propose("a", b"x")
    assert net.data("a") == [b"x"]  # a and l are a majority of {a, b, l}


def test_configuration_takes_effect_when_appended_not_when_committed() -> None:
    """Thesis §4.1: a server uses the latest configuration in its log, committed or not."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("b")
    net.isolate("c")
    net.nodes["a"].propose_conf_change(ConfChange(ADD, "d"), 0)
    assert net.nodes["a"].configuration.learners == frozenset("d")
    assert net.nodes["a"].commit_index < net.nodes["a"].status().last_index
    assert "d" in net.nodes["a"].status().progress


def test_truncated_configuration_entry_is_undone() -> None:
    """Thesis §4.1: if a configuration entry is removed from the log (conflict), the
    server falls back to the previous configuration."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.partition(["a"], ["b", "c"])
    net.nodes["a"].propose_conf_change(ConfChange(ADD, "d"), 0)
    net.settle()
    assert net.nodes["a"].configuration.learners == frozenset("d")
    net.tick(["b", "c"], times=40)
    assert net.nodes["b"].term > net.nodes["a"].term
    net.heal()
    net.tick(times=5)
    assert net.nodes["a"].configuration == Configuration(frozenset("abc"))


def test_only_one_uncommitted_change_at_a_time() -> None:
    """Thesis §4.1: a new change starts only after the previous one committed."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("b")
    net.isolate("c")
    index = net.nodes["a"].propose_conf_change(ConfChange(ADD, "d"), 0)
    with pytest.raises(ConfChangeInProgress) as raised:
        net.nodes["a"].propose_conf_change(ConfChange(ADD, "e"), 0)
    assert raised.value.pending_index == index


def test_new_leader_waits_for_its_noop_before_a_change() -> None:
    """Thesis §4.1 (the 2015 correction): a leader may not change membership until it
    has committed an entry of its own term."""
    net = Net(["a", "b", "c"], config=RaftConfig(pre_vote=False))
    net.isolate("b")
    net.isolate("c")
    node = net.nodes["a"]
    for _ in range(20):
        node.tick()
    assert node.status().role is Role.CANDIDATE
    node.step(RequestVoteResponse(node.term, "b", "a", True))
    assert node.status().role is Role.LEADER
    with pytest.raises(ConfChangeInProgress):
        node.propose_conf_change(ConfChange(ADD, "d"), 0)


@pytest.mark.parametrize(
    ("kind", "node_id"),
    [(ADD, "b"), (ADD, "l"), (PROMOTE, "b"), (PROMOTE, "zz"), (REMOVE, "zz")],
)
def test_nonsense_changes_are_refused(kind: ConfChangeType, node_id: str) -> None:
    """Each change must make sense for the configuration in force; nothing is appended."""
    net = Net(["a", "b"], learners=["l"])
    net.elect("a")
    last = net.nodes["a"].status().last_index
    with pytest.raises(InvalidConfChange):
        net.nodes["a"].propose_conf_change(ConfChange(kind, node_id), 0)
    assert net.nodes["a"].status().last_index == last


def test_removing_the_last_voter_is_refused() -> None:
    """A configuration with no voters could never elect or commit again."""
    net = Net(["a"])
    net.elect("a")
    with pytest.raises(InvalidConfChange):
        net.nodes["a"].propose_conf_change(ConfChange(REMOVE, "a"), 0)


def test_removed_follower_stops_counting_and_receiving() -> None:
    """§6: after removal the cluster commits with the remaining majority."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    _change(net, "a", REMOVE, "c")
    net.isolate("c")
    net.propose("a", b"x")
    assert net.data("b") == [b"x"]
    assert "c" not in net.nodes["a"].status().progress


def test_removed_leader_steps_down_once_removal_commits() -> None:
    """Thesis §4.2.2: the leader manages the cluster without counting itself until the
    change that removes it commits, then steps down; the others elect a new leader."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    _change(net, "a", REMOVE, "a")
    assert net.nodes["a"].status().role is Role.FOLLOWER
    net.tick(["b", "c"], times=40)
    assert net.leader() in {"b", "c"}
    net.tick(["a"], times=100)
    assert net.leader() in {"b", "c"}  # a is no voter anymore: it never campaigns


def test_node_removed_by_an_uncommitted_entry_may_still_campaign() -> None:
    """Thesis §4.2.2: a server not in its latest configuration still starts elections
    until that configuration commits (it may be the only one holding it), without
    counting its own vote."""
    net = Net(["a", "b"])
    net.elect("a")
    net.isolate("a")
    net.nodes["a"].propose_conf_change(ConfChange(REMOVE, "a"), 0)
    net.settle()
    net.tick(["a"], times=2 * net.config.election_timeout_ticks)  # check-quorum
    assert net.nodes["a"].status().role is Role.FOLLOWER
    net.heal()
    net.tick(times=6 * net.config.election_timeout_ticks)
    assert net.nodes["b"].configuration.voters == frozenset("b")
    assert net.leader() == "b"
