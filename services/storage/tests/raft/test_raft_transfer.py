"""Leadership transfer: Raft thesis §3.10 (the leader catches the target up, sends
TimeoutNow, stops taking proposals meanwhile, and gives up after an election timeout)."""

import pytest
from logmesh_storage.raft import (
    AppendEntries,
    InvalidTransfer,
    NotLeader,
    ProposalDropped,
    Role,
    TimeoutNow,
)
from raft_test_net import Net


def test_transfer_to_up_to_date_follower_makes_it_leader() -> None:
    """Thesis §3.10: TimeoutNow makes the target campaign at once and win the next term."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.nodes["a"].transfer_leadership("b")
    net.settle()
    assert net.leader() == "b" and net.nodes["b"].term == 2
    net.propose("b", b"x")
    assert net.data("a") == [b"x"]


def test_transfer_to_lagging_follower_catches_it_up_first() -> None:
    """Thesis §3.10 step 2: the leader sends the missing entries before TimeoutNow."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("c")
    net.propose("a", b"x", b"y")
    net.heal()
    net.nodes["a"].transfer_leadership("c")
    net.settle()
    timeout_now = next(i for i, m in enumerate(net.sent) if isinstance(m, TimeoutNow))
    appends = [
        i
        for i, m in enumerate(net.sent)
        if isinstance(m, AppendEntries) and m.to_id == "c" and m.entries
    ]
    assert appends and max(appends) < timeout_now
    assert net.leader() == "c"


def test_proposals_are_dropped_while_transferring() -> None:
    """Thesis §3.10: the old leader stops accepting client requests during a transfer."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("b")
    net.nodes["a"].transfer_leadership("b")
    with pytest.raises(ProposalDropped):
        net.nodes["a"].propose([b"x"], 0)


def test_transfer_gives_up_after_an_election_timeout() -> None:
    """Thesis §3.10: if the transfer does not complete within an election timeout the
    leader aborts it and takes requests again."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.drop = lambda m: isinstance(m, TimeoutNow)
    net.nodes["a"].transfer_leadership("b")
    net.settle()
    net.tick(["a", "b", "c"], times=net.config.election_timeout_ticks)
    assert net.nodes["a"].status().role is Role.LEADER
    net.propose("a", b"x")
    assert net.data("b") == [b"x"]


def test_transfer_to_a_learner_is_refused() -> None:
    """Only a voter can become leader."""
    net = Net(["a", "b"], learners=["l"])
    net.elect("a")
    with pytest.raises(InvalidTransfer):
        net.nodes["a"].transfer_leadership("l")


def test_transfer_on_a_follower_raises_not_leader() -> None:
    net = Net(["a", "b"])
    net.elect("a")
    with pytest.raises(NotLeader):
        net.nodes["b"].transfer_leadership("b")


def test_timeout_now_lets_the_target_through_the_lease() -> None:
    """Thesis §3.10 / §4.2.3: a transfer election is granted even by voters that
    heard the leader recently (the request says it is a transfer)."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.tick(times=2)
    net.nodes["a"].transfer_leadership("c")
    net.settle()
    assert net.leader() == "c"
