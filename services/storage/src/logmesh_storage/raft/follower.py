"""What a follower (or learner) does with messages of its current term: accept entries
(§5.3), learn the commit index, install snapshots (§7, as DESIGN §4: metadata only,
the log restarts after it) and obey TimeoutNow (thesis §3.10).

Every answer that tells the leader "I have these entries" leaves only after they are
durable (node.send_after_persist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import candidate
from .messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    TimeoutNow,
)

if TYPE_CHECKING:
    from .node import RaftNode


def step(node: RaftNode, message: Message) -> None:
    if isinstance(message, AppendEntries):
        _heard_from_leader(node, message.from_id)
        _handle_append(node, message)
    elif isinstance(message, Heartbeat):
        _heard_from_leader(node, message.from_id)
        node.log.commit_to(min(message.commit_index, node.log.last_index()))
        node.send(HeartbeatResponse(node.term, node.id, message.from_id, message.context))
    elif isinstance(message, InstallSnapshot):
        _heard_from_leader(node, message.from_id)
        _handle_snapshot(node, message)
    elif isinstance(message, TimeoutNow) and node.promotable:
        candidate.campaign(node, transfer=True)
    # Responses of our term are late answers to a role we left: nothing to do.


def _heard_from_leader(node: RaftNode, leader_id: str) -> None:
    node.election_elapsed_ticks = 0
    node.leader_id = leader_id


def _handle_append(node: RaftNode, message: AppendEntries) -> None:
    log = node.log
    if message.prev_index < log.commit_index:
        # Everything up to our commit index matches the leader (Log Matching).
        node.send_after_persist(_accept(node, message.from_id, log.commit_index))
        return
    last_new = log.maybe_append(
        message.prev_index, message.prev_term, message.commit_index, message.entries
    )
    if last_new is not None:
        node.send_after_persist(_accept(node, message.from_id, last_new))
        return
    # Fast back-off: tell the leader the last index whose term could match.
    hint_index = log.find_conflict_by_term(
        min(message.prev_index, log.last_index()), message.prev_term
    )
    hint_term = log.term(hint_index) or 0
    node.send_after_persist(
        AppendEntriesResponse(
            node.term, node.id, message.from_id, message.prev_index, True, hint_index, hint_term
        )
    )


def _handle_snapshot(node: RaftNode, message: InstallSnapshot) -> None:
    log = node.log
    snapshot = message.snapshot
    if snapshot.index <= log.commit_index:
        node.send_after_persist(_accept(node, message.from_id, log.commit_index))
        return
    if log.match_term(snapshot.index, snapshot.term):
        # We already hold that prefix: keep our log, just learn that it is committed.
        log.commit_to(snapshot.index)
    else:
        log.restore(snapshot)
    node.send_after_persist(_accept(node, message.from_id, snapshot.index))


def _accept(node: RaftNode, to_id: str, index: int) -> AppendEntriesResponse:
    return AppendEntriesResponse(node.term, node.id, to_id, index, False)
