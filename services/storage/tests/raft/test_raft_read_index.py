"""ReadIndex: Raft thesis §6.4 (linearizable reads without writing to the log: record
the commit index, confirm leadership with a heartbeat round, answer once applied)."""

import pytest
from logmesh_storage.raft import NotLeader, RaftConfig, ReadState, RequestVoteResponse, Role
from raft_test_net import Net


def test_read_index_answers_after_a_heartbeat_quorum() -> None:
    """Thesis §6.4 steps 1-3: ReadState(commit index) once a majority acknowledged."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.propose("a", b"x")
    net.nodes["a"].read_index(b"req-1")
    assert net.read_states["a"] == []
    net.settle()
    assert net.read_states["a"] == [ReadState(2, b"req-1")]


def test_leader_cut_off_from_majority_answers_no_read() -> None:
    """Thesis §6.4: a deposed leader that does not know it yet must not serve reads."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("a")
    net.nodes["a"].read_index(b"stale?")
    net.tick(["a"], times=3)
    assert net.read_states["a"] == []


def test_reads_before_the_leaders_first_commit_wait_for_it() -> None:
    """Thesis §6.4 step 1: the leader's commit index is current only once an entry of
    its own term (the NOOP) committed; reads wait for that."""
    net = Net(["a", "b", "c"], config=RaftConfig(pre_vote=False))
    net.isolate("b")
    net.isolate("c")
    a = net.nodes["a"]
    for _ in range(20):
        a.tick()
    assert a.status().role is Role.CANDIDATE
    a.step(RequestVoteResponse(a.term, "b", "a", True))
    assert a.status().role is Role.LEADER
    assert a.commit_index == 0
    a.read_index(b"early")
    net.settle()
    assert net.read_states["a"] == []  # cut off: the NOOP cannot commit
    net.heal()
    net.tick(times=3)
    # Answered at the NOOP's index, not at the commit index of the request's arrival (0).
    assert net.read_states["a"] == [ReadState(1, b"early")]


def test_reads_are_answered_in_order() -> None:
    """An acknowledgement of a later read confirms every earlier one too."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("b")
    net.isolate("c")
    net.nodes["a"].read_index(b"1")
    net.nodes["a"].read_index(b"2")
    net.settle()
    net.heal()
    net.tick(times=1)
    assert [r.context for r in net.read_states["a"]] == [b"1", b"2"]


def test_single_voter_answers_reads_at_once() -> None:
    net = Net(["a"])
    net.elect("a")
    net.nodes["a"].read_index(b"r")
    net.settle()
    assert net.read_states["a"] == [ReadState(1, b"r")]


def test_read_index_on_follower_raises_not_leader() -> None:
    net = Net(["a", "b"])
    net.elect("a")
    with pytest.raises(NotLeader) as raised:
        net.nodes["b"].read_index(b"r")
    assert raised.value.leader_id == "a"
