"""Leader election: Raft paper §5.2 (elections), §5.1 (terms), §5.4.1 (election
restriction), and the Ready rule that a vote is durable before it is announced."""

import random

import pytest
from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.raft import (
    AppendEntries,
    Configuration,
    HardState,
    MemoryStorage,
    RaftConfig,
    RaftNode,
    RequestVote,
    RequestVoteResponse,
    Role,
    SnapshotMeta,
)
from raft_test_net import FAST, Net


def _node(node_id: str, voters: str = "abc", config: RaftConfig = FAST) -> RaftNode:
    storage = MemoryStorage.bootstrap(list(voters))
    return RaftNode(node_id, storage, config, random.Random(7))


def test_single_voter_elects_itself_and_commits_noop_once_persisted() -> None:
    """§5.2: a candidate that gets a majority (here itself) becomes leader; §5.4.2 with
    the thesis §10.2.1 rule: the leader's own copy counts only after advance()."""
    net = Net(["a"])
    net.elect("a")
    node = net.nodes["a"]
    assert node.status().role is Role.LEADER and node.term == 1
    assert node.commit_index == 1
    assert [e.type for e in net.applied["a"]] == [EntryType.NOOP]


def test_election_timeout_is_randomized_within_t_to_2t() -> None:
    """§5.2: randomized election timeouts in [T, 2T) spread candidates apart."""
    fired_at: set[int] = set()
    for seed in range(40):
        config = RaftConfig(election_timeout_ticks=10, pre_vote=False)
        node = RaftNode("a", MemoryStorage.bootstrap(["a", "b", "c"]), config, random.Random(seed))
        ticks = 0
        while node.role is Role.FOLLOWER:
            node.tick()
            ticks += 1
        fired_at.add(ticks)
    assert min(fired_at) >= 10 and max(fired_at) < 20
    assert len(fired_at) > 3, "timeouts are not randomized"


def test_cluster_elects_exactly_one_leader_by_ticking() -> None:
    """§5.2: with all timers running, one leader emerges and the others follow it."""
    net = Net(["a", "b", "c", "d", "e"], seed=3)
    for _ in range(60):
        net.tick()
    leader = net.leader()
    assert {n.leader_id for n in net.nodes.values()} == {leader}
    assert len({n.term for n in net.nodes.values()}) == 1


def test_vote_is_granted_at_most_once_per_term() -> None:
    """§5.2: each server votes for at most one candidate in a given term."""
    node = _node("c")
    node.step(RequestVote(2, "a", "c", 0, 0))
    node.step(RequestVote(2, "b", "c", 0, 0))
    ready = node.ready()
    responses = [m for m in ready.messages_after_persist if isinstance(m, RequestVoteResponse)]
    assert [(m.to_id, m.granted) for m in responses] == [("a", True), ("b", False)]
    assert ready.hard_state == HardState(term=2, vote="a", commit_index=0)


def test_vote_response_leaves_only_after_the_vote_is_durable() -> None:
    """Ready rule (docs/raft.md): a vote is announced only after it is persisted."""
    node = _node("c")
    node.step(RequestVote(2, "a", "c", 0, 0))
    ready = node.ready()
    assert not any(isinstance(m, RequestVoteResponse) for m in ready.messages)
    assert ready.hard_state is not None and ready.hard_state.vote == "a"


def test_restarted_node_remembers_its_vote() -> None:
    """§5.2 / Figure 2: votedFor is persistent state; a restart does not allow a second vote."""
    net = Net(["a", "b", "c"], config=RaftConfig(pre_vote=False, check_quorum=False))
    net.nodes["c"].step(RequestVote(1, "a", "c", 0, 0))
    net.process("c")
    net.queue.clear()
    net.crash("c")
    net.nodes["c"].step(RequestVote(1, "b", "c", 0, 0))
    ready = net.nodes["c"].ready()
    (answer,) = ready.messages_after_persist
    assert isinstance(answer, RequestVoteResponse) and not answer.granted


@pytest.mark.parametrize(
    ("last_index", "last_term", "granted"),
    [(1, 1, False), (5, 1, False), (2, 2, True), (1, 3, True), (3, 2, True)],
)
def test_vote_requires_candidate_log_at_least_as_up_to_date(
    last_index: int, last_term: int, granted: bool
) -> None:
    """§5.4.1: compare last terms, then lengths; deny a candidate with a staler log."""
    entries = [Entry(1, 1, EntryType.NOOP, 0, 0, b""), Entry(2, 2, EntryType.NOOP, 0, 0, b"")]
    storage = MemoryStorage(
        SnapshotMeta(0, 0, Configuration(frozenset("abc")), 0), HardState(2, None, 0), entries
    )
    node = RaftNode("c", storage, RaftConfig(pre_vote=False), random.Random(1))
    node.step(RequestVote(3, "a", "c", last_index, last_term))
    response = node.ready().messages_after_persist[0]
    assert isinstance(response, RequestVoteResponse)
    assert response.granted is granted


def test_higher_term_turns_leader_into_follower() -> None:
    """§5.1: a server that sees a larger term updates its term and reverts to follower."""
    net = Net(["a", "b", "c"], config=RaftConfig(check_quorum=False))
    net.elect("a")
    net.nodes["a"].step(RequestVoteResponse(9, "b", "a", False))
    assert net.nodes["a"].status().role is Role.FOLLOWER and net.nodes["a"].term == 9


def test_candidate_rejected_by_majority_returns_to_follower() -> None:
    """§5.2: a candidate that cannot win stops campaigning (here: a majority said no)."""
    node = _node("a", config=RaftConfig(pre_vote=False))
    while node.role is Role.FOLLOWER:
        node.tick()
    assert node.status().role is Role.CANDIDATE
    node.step(RequestVoteResponse(node.term, "b", "a", False))
    node.step(RequestVoteResponse(node.term, "c", "a", False))
    assert node.status().role is Role.FOLLOWER


def test_candidate_steps_down_for_leader_of_same_term() -> None:
    """§5.2: a candidate that hears AppendEntries from a leader of its term follows it."""
    node = _node("b", config=RaftConfig(pre_vote=False))
    while node.role is Role.FOLLOWER:
        node.tick()
    assert node.status().role is Role.CANDIDATE
    node.step(AppendEntries(node.term, "a", "b", 0, 0, (), 0))
    assert node.status().role is Role.FOLLOWER and node.leader_id == "a"
    assert node.term == 1


def test_node_without_configuration_never_campaigns() -> None:
    """DESIGN §4: a node that knows no cluster waits to be contacted."""
    node = RaftNode("z", MemoryStorage(), FAST, random.Random(1))
    for _ in range(100):
        node.tick()
    assert node.status().role is Role.FOLLOWER and node.term == 0 and not node.has_ready()


def test_learner_never_campaigns() -> None:
    """Thesis §4.2.1: learners (non-voting members) do not start elections."""
    net = Net(["a"], learners=["l"])
    net.tick(["l"], times=100)
    assert net.nodes["l"].status().role is Role.FOLLOWER and net.nodes["l"].term == 0


def test_pre_candidate_ignores_grants_from_an_older_round() -> None:
    """Thesis §9.6: only grants for term + 1 count toward a pre-vote majority."""
    node = _node("a")
    while node.role is Role.FOLLOWER:
        node.tick()
    assert node.role is Role.PRE_CANDIDATE and node.term == 0
    node.step(RequestVoteResponse(0, "b", "a", True, pre_vote=True))  # stale: term 0
    assert node.status().role is Role.PRE_CANDIDATE
    node.step(RequestVoteResponse(1, "b", "a", True, pre_vote=True))
    assert node.status().role is Role.CANDIDATE and node.term == 1
