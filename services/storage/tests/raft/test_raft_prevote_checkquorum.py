"""Pre-vote and check-quorum: Raft thesis §9.6 (pre-vote: a partitioned server cannot
disrupt the cluster when it comes back), §6.2 (check-quorum: a leader that cannot
hear a majority steps down) and §4.2.3 (voters that hear a leader ignore votes)."""

from logmesh_storage.raft import (
    AppendEntriesResponse,
    RaftConfig,
    RequestVote,
    RequestVoteResponse,
    Role,
)
from raft_test_net import Net


def test_isolated_node_with_pre_vote_does_not_raise_its_term() -> None:
    """Thesis §9.6: a pre-candidate that cannot win keeps its term."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("c")
    net.tick(["c"], times=100)
    assert net.nodes["c"].term == 1
    assert net.nodes["c"].status().role is Role.PRE_CANDIDATE


def test_rejoining_node_with_pre_vote_does_not_disrupt_the_leader() -> None:
    """Thesis §9.6: when the partition heals, the leader keeps leading in its term."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("c")
    net.tick(["c"], times=100)
    net.heal()
    net.tick(times=30)
    assert net.leader() == "a" and net.nodes["a"].term == 1
    assert net.nodes["c"].leader_id == "a"


def test_without_pre_vote_a_rejoining_node_forces_a_new_term() -> None:
    """Thesis §9.6, the problem pre-vote solves: the isolated node's term inflates and
    its return deposes the leader."""
    net = Net(["a", "b", "c"], config=RaftConfig(pre_vote=False, check_quorum=False))
    net.elect("a")
    net.isolate("c")
    net.tick(["c"], times=100)
    assert net.nodes["c"].term > 1
    net.heal()
    net.tick(times=2 * net.config.election_timeout_ticks)
    assert net.nodes["a"].term > 1


def test_leader_cut_off_from_majority_steps_down_after_election_timeout() -> None:
    """Thesis §6.2 (check-quorum): no answers from a majority for an election timeout
    and the leader steps down, so clients stop trusting it."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("a")
    net.tick(["a"], times=net.config.election_timeout_ticks - 1)
    assert net.nodes["a"].status().role is Role.LEADER
    net.tick(["a"], times=net.config.election_timeout_ticks + 1)
    assert net.nodes["a"].status().role is Role.FOLLOWER and net.nodes["a"].leader_id is None


def test_leader_with_a_majority_keeps_leading() -> None:
    """Thesis §6.2: a leader that hears a majority (here: one of two followers) stays."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    net.isolate("c")
    net.tick(["a", "b"], times=50)
    assert net.nodes["a"].status().role is Role.LEADER


def test_follower_hearing_a_leader_ignores_vote_requests() -> None:
    """Thesis §4.2.3: within an election timeout of hearing the leader, a server neither
    grants a vote nor bumps its term for a RequestVote."""
    net = Net(["a", "b", "c"])
    net.elect("a")
    b = net.nodes["b"]
    b.step(RequestVote(5, "c", "b", 100, 5))
    assert b.term == 1 and not b.has_ready()


def test_stale_leader_learns_the_new_term_from_any_answer() -> None:
    """§5.1 with pre-vote: a deposed leader's AppendEntries is answered with the higher
    term (otherwise nodes that only pre-vote could never tell it)."""
    config = RaftConfig(check_quorum=False)
    net = Net(["a", "b", "c"], config=config)
    net.elect("a")
    net.isolate("a")
    net.tick(["b", "c"], times=40)
    leaders = {n: node.term for n, node in net.nodes.items() if node.role is Role.LEADER}
    assert len(leaders) == 2 and leaders["a"] == 1  # two leaders, of different terms
    net.heal()
    net.tick(["a"], times=1)
    assert net.nodes["a"].status().role is Role.FOLLOWER
    answers = [m for m in net.sent if isinstance(m, AppendEntriesResponse) and m.to_id == "a"]
    assert any(m.term > 1 for m in answers)


def test_granted_pre_vote_changes_no_state_of_the_voter() -> None:
    """Thesis §9.6: a pre-vote changes neither term nor vote of the one granting it."""
    net = Net(["a", "b", "c"])
    c = net.nodes["c"]
    c.step(RequestVote(2, "a", "c", 0, 0, pre_vote=True))
    ready = c.ready()
    assert ready.hard_state is None
    (answer,) = ready.messages
    assert isinstance(answer, RequestVoteResponse) and answer.granted and answer.term == 2
    assert c.term == 0 and c.vote is None
