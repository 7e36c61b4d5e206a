"""Elections (§5.2) with pre-vote (thesis §9.6): how a follower campaigns, and what a
pre-candidate or candidate does with the messages it gets.

A pre-candidate asks "would you vote for me at term + 1?" without changing its term
or vote, so a node that was partitioned away cannot disrupt a working leader by
bumping terms. Role changes only through node.become_*.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import follower
from .messages import (
    AppendEntries,
    Heartbeat,
    InstallSnapshot,
    Message,
    RequestVote,
    RequestVoteResponse,
)
from .types import Role

if TYPE_CHECKING:
    from .node import RaftNode


def campaign(node: RaftNode, transfer: bool) -> None:
    """Start an election. A transfer (TimeoutNow) skips the pre-vote: the leader asked."""
    assert node.promotable, "only a voter campaigns"
    _start(node, pre_vote=node.config.pre_vote and not transfer, transfer=transfer)


def _start(node: RaftNode, pre_vote: bool, transfer: bool) -> None:
    if pre_vote:
        node.become_pre_candidate()
        term = node.term + 1
    else:
        node.become_candidate()
        term = node.term
    _record_vote(node, node.id, granted=True)
    if _poll(node):
        return
    log = node.log
    for peer in sorted(log.configuration.voters - {node.id}):
        request = RequestVote(
            term, node.id, peer, log.last_index(), log.last_term(), pre_vote, transfer
        )
        if pre_vote:
            node.send(request)
        else:
            # Our vote for ourselves must be durable before anyone can count on it.
            node.send_after_persist(request)


def step(node: RaftNode, message: Message) -> None:
    """Messages of our term (or granted pre-votes for term + 1) while campaigning."""
    if isinstance(message, AppendEntries | Heartbeat | InstallSnapshot):
        # §5.2: a leader of our term exists; follow it.
        node.become_follower(node.term, message.from_id)
        follower.step(node, message)
    elif isinstance(message, RequestVoteResponse):
        _handle_vote_response(node, message)
    # TimeoutNow while campaigning: we are already campaigning.


def _handle_vote_response(node: RaftNode, message: RequestVoteResponse) -> None:
    pre_vote = node.role is Role.PRE_CANDIDATE
    if message.pre_vote != pre_vote:
        return  # an answer to an earlier round
    if pre_vote and message.granted and message.term != node.term + 1:
        return  # a grant for an older pre-campaign
    if message.from_id not in node.log.configuration.voters:
        return
    _record_vote(node, message.from_id, message.granted)
    _poll(node)


def _record_vote(node: RaftNode, voter: str, granted: bool) -> None:
    node.votes.setdefault(voter, granted)


def _poll(node: RaftNode) -> bool:
    """Count the votes; True if the election is decided (won or lost)."""
    voters = node.log.configuration.voters
    granted = sum(1 for v, ok in node.votes.items() if ok and v in voters)
    rejected = sum(1 for v, ok in node.votes.items() if not ok and v in voters)
    if granted >= node.quorum():
        if node.role is Role.PRE_CANDIDATE:
            _start(node, pre_vote=False, transfer=False)  # the real election, now it can win
        else:
            node.become_leader()
        return True
    if rejected >= node.quorum():
        node.become_follower(node.term, None)
        return True
    return False
