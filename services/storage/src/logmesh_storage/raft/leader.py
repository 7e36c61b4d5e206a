"""What a leader does: replicate (§5.3) with per-follower flow control, commit by the
current-term rule (§5.4.2), heartbeats and check-quorum (thesis §6.2), membership
changes one server at a time (thesis §4.1), leadership transfer (thesis §3.10) and
ReadIndex (thesis §6.4).

Functions over the RaftNode's state; they send through node.send (AppendEntries may
leave before the leader's own copy is durable, thesis §10.2.1) and change role only
through node.become_*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..log.entry import Entry, EntryType, encode_records, make_entry
from .errors import (
    ConfChangeInProgress,
    InvalidConfChange,
    InvalidTransfer,
    LogCompacted,
    ProposalDropped,
)
from .messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    TimeoutNow,
)
from .progress import Progress, ProgressState
from .types import ConfChange, ConfChangeType, Configuration, NodeId, ReadState, Role

if TYPE_CHECKING:
    from .node import RaftNode


# inputs


def tick(node: RaftNode) -> None:
    node.election_elapsed_ticks += 1
    node.heartbeat_elapsed_ticks += 1
    if node.election_elapsed_ticks >= node.config.election_timeout_ticks:
        node.election_elapsed_ticks = 0
        if node.config.check_quorum and not _quorum_active(node):
            node.become_follower(node.term, None)  # thesis §6.2: we may be partitioned away
            return
        node.lead_transferee = None  # the transfer took too long: take proposals again
    if node.heartbeat_elapsed_ticks >= node.config.heartbeat_interval_ticks:
        node.heartbeat_elapsed_ticks = 0
        broadcast_heartbeat(node, node.read_only.last_pending_context())


def step(node: RaftNode, message: Message) -> None:
    if isinstance(message, AppendEntriesResponse):
        _handle_append_response(node, message)
    elif isinstance(message, HeartbeatResponse):
        _handle_heartbeat_response(node, message)
    elif isinstance(message, AppendEntries | Heartbeat | InstallSnapshot | TimeoutNow):
        raise AssertionError(
            f"two leaders in term {node.term}: {node.id} got {type(message).__name__} "
            f"from {message.from_id}"
        )
    # RequestVoteResponse of our own term: the election is over, nothing to do.


def propose(node: RaftNode, payloads: Sequence[bytes], timestamp_ms: int) -> tuple[int, int]:
    if node.lead_transferee is not None:
        raise ProposalDropped()
    first = node.log.last_index() + 1
    offset = node.log.next_offset()
    term, data = node.term, EntryType.DATA  # valid by construction: make_entry skips checks
    assert first >= 1 and term >= 1 and offset >= 0, (first, term, offset)
    entries = [
        make_entry(first + i, term, data, offset + i, timestamp_ms, payload)
        for i, payload in enumerate(payloads)
    ]
    append_entries(node, entries)
    broadcast_append(node)
    return first, entries[-1].index


def propose_records(node: RaftNode, values: Sequence[bytes], timestamp_ms: int) -> int:
    if node.lead_transferee is not None:
        raise ProposalDropped()
    index, offset = node.log.last_index() + 1, node.log.next_offset()
    assert index >= 1 and node.term >= 1 and offset >= 0, (index, node.term, offset)
    payload = encode_records(values)  # valid by construction: make_entry skips checks
    append_entries(
        node, [make_entry(index, node.term, EntryType.RECORDS, offset, timestamp_ms, payload)]
    )
    broadcast_append(node)
    return index


def propose_conf_change(node: RaftNode, change: ConfChange, timestamp_ms: int) -> int:
    if node.lead_transferee is not None:
        raise ProposalDropped()
    if node.pending_conf_index > node.log.commit_index:
        raise ConfChangeInProgress(node.pending_conf_index)
    configuration = _changed(node.log.configuration, change)
    index = node.log.last_index() + 1
    entry = Entry(
        index,
        node.term,
        EntryType.CONFIG,
        node.log.next_offset(),
        timestamp_ms,
        configuration.encode(),
    )
    append_entries(node, [entry])
    node.pending_conf_index = index
    return index


def transfer_leadership(node: RaftNode, to_id: NodeId) -> None:
    if to_id == node.id:
        return  # already the leader
    if to_id not in node.log.configuration.voters:
        raise InvalidTransfer(f"{to_id} is not a voter of the current configuration")
    if node.lead_transferee == to_id:
        return
    node.lead_transferee = to_id
    node.election_elapsed_ticks = 0  # the transfer is abandoned after one election timeout
    if node.progress[to_id].match_index == node.log.last_index():
        node.send(TimeoutNow(node.term, node.id, to_id))
    else:
        send_append(node, to_id, send_if_empty=True)


def read_index(node: RaftNode, context: bytes) -> None:
    if node.log.term(node.log.commit_index) != node.term:
        # Thesis §6.4 step 1: our commit index is current only once our NOOP commits.
        node.read_only.waiting_for_commit.append(context)
        return
    _start_read(node, context)


# replication


def append_entries(node: RaftNode, entries: Sequence[Entry]) -> None:
    """Append to our own log; our copy counts toward commit only once persisted."""
    node.log.append(entries)
    node.sync_configuration()


def broadcast_append(node: RaftNode, send_if_empty: bool = False) -> None:
    for peer in node.progress:
        if peer != node.id:
            send_append(node, peer, send_if_empty)


def send_append(node: RaftNode, to_id: NodeId, send_if_empty: bool = False) -> bool:
    """Send `to_id` the entries it is missing if flow control allows; True if sent."""
    pr = node.progress[to_id]
    if pr.is_paused():
        return False
    log = node.log
    prev_index = pr.next_index - 1
    prev_term = log.term(prev_index)
    if prev_term is None or pr.next_index < log.first_index():
        _send_snapshot(node, to_id, pr)
        return True
    hi = min(log.last_index() + 1, pr.next_index + node.config.max_entries_per_message)
    try:
        entries = log.entries(pr.next_index, hi, node.config.max_bytes_per_message)
    except LogCompacted:
        _send_snapshot(node, to_id, pr)
        return True
    if not entries and not send_if_empty:
        return False
    commit_index = log.commit_index
    node.send(
        AppendEntries(
            node.term, node.id, to_id, prev_index, prev_term, tuple(entries), commit_index
        )
    )
    pr.sent_entries(entries[-1].index if entries else None)
    pr.commit_sent = max(pr.commit_sent, commit_index)
    pr.append_sent = True
    return True


def send_commit_notices(node: RaftNode, commit_index: int) -> None:
    """Tell the followers that were not sent `commit_index` (or later) the current commit
    index (defer_commit_notices)."""
    for peer, pr in node.progress.items():
        if peer != node.id and pr.commit_sent < commit_index:
            send_append(node, peer, send_if_empty=True)


def on_self_persisted(node: RaftNode) -> None:
    """advance(): our own stable copy now counts toward the majority."""
    if node.progress[node.id].maybe_update(node.log.stable_last_index()):
        _maybe_commit(node)


def sync_progress(node: RaftNode) -> None:
    members = node.log.configuration.members | {node.id}
    for peer in list(node.progress):
        if peer not in members:
            del node.progress[peer]
    next_index = node.log.last_index() + 1
    for peer in sorted(members - node.progress.keys()):  # sorted: replayable message order
        node.progress[peer] = Progress.new(next_index, node.config.max_inflight_messages)
    if node.lead_transferee not in node.log.configuration.voters:
        node.lead_transferee = None
    _maybe_commit(node)  # the quorum may have shrunk


def broadcast_heartbeat(node: RaftNode, context: bytes) -> None:
    quiet = node.config.quiet_heartbeats and not context  # a ReadIndex round needs them all
    for peer, pr in node.progress.items():
        if peer != node.id:
            skip, pr.append_sent = quiet and pr.append_sent, False
            if skip:
                continue
            commit_index = min(pr.match_index, node.log.commit_index)
            node.send(Heartbeat(node.term, node.id, peer, commit_index, context))
            pr.commit_sent = max(pr.commit_sent, commit_index)


# responses


def _handle_append_response(node: RaftNode, message: AppendEntriesResponse) -> None:
    pr = node.progress.get(message.from_id)
    if pr is None:
        return  # no longer a member
    pr.recent_active = True
    if message.reject:
        _handle_reject(node, message, pr)
        return
    if not pr.maybe_update(message.index):
        return
    if pr.state is ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state is ProgressState.SNAPSHOT and pr.match_index >= pr.pending_snapshot_index:
        pr.become_probe()
        pr.become_replicate()
    elif pr.state is ProgressState.REPLICATE:
        pr.inflights.free_to(message.index)
    if not _maybe_commit(node) and node.role is Role.LEADER:
        while send_append(node, message.from_id):
            pass  # fill the window
    if (
        node.lead_transferee == message.from_id
        and pr.match_index == node.log.last_index()
        and node.role is Role.LEADER
    ):
        node.send(TimeoutNow(node.term, node.id, message.from_id))


def _handle_reject(node: RaftNode, message: AppendEntriesResponse, pr: Progress) -> None:
    match_hint_index = message.hint_index
    if message.hint_term > 0:
        match_hint_index = node.log.find_conflict_by_term(message.hint_index, message.hint_term)
    if pr.maybe_decrease_to(message.index, match_hint_index):
        if pr.state is ProgressState.REPLICATE:
            pr.become_probe()
        send_append(node, message.from_id, send_if_empty=True)


def _handle_heartbeat_response(node: RaftNode, message: HeartbeatResponse) -> None:
    pr = node.progress.get(message.from_id)
    if pr is None:
        return
    pr.recent_active = True
    pr.probe_sent = False
    if pr.state is ProgressState.SNAPSHOT:
        pr.become_probe()  # the InstallSnapshot may be lost: it is metadata, resend it
    if pr.state is ProgressState.REPLICATE and pr.inflights.full():
        pr.inflights.free_first()  # a lost AppendEntries must not stall the window
    if pr.match_index < node.log.last_index():
        send_append(node, message.from_id, send_if_empty=True)
    if message.context and message.from_id in node.log.configuration.voters:
        acks = node.read_only.ack(message.context, message.from_id)
        if len(acks & node.log.configuration.voters) >= node.quorum():
            node.read_states.extend(node.read_only.release_through(message.context))


# commit


def _maybe_commit(node: RaftNode) -> bool:
    """§5.4.2: commit the highest index a majority of voters hold, if it is of our term.
    True if the commit index moved (the new commit index has then been broadcast)."""
    voters = node.log.configuration.voters
    if not voters:
        return False
    matches = sorted((node.progress[v].match_index for v in voters), reverse=True)
    candidate = matches[node.quorum() - 1]
    if candidate <= node.log.commit_index or node.log.term(candidate) != node.term:
        return False
    node.log.commit_to(candidate)
    _on_commit(node)
    return True


def _on_commit(node: RaftNode) -> None:
    waiting = node.read_only.waiting_for_commit
    node.read_only.waiting_for_commit = []
    for context in waiting:
        _start_read(node, context)
    if node.id not in node.log.configuration.voters and (
        node.log.configuration_index <= node.log.commit_index
    ):
        # Thesis §4.2.2: a leader removed from the cluster steps down once that commits.
        node.become_follower(node.term, None)
        return
    broadcast_append(node, send_if_empty=not node.config.defer_commit_notices)


def _start_read(node: RaftNode, context: bytes) -> None:
    voters = node.log.configuration.voters
    if voters == {node.id}:
        node.read_states.append(ReadState(node.log.commit_index, context))
        return
    if node.read_only.add(node.log.commit_index, context, node.id):
        broadcast_heartbeat(node, context)


def _quorum_active(node: RaftNode) -> bool:
    active = 0
    for peer, pr in node.progress.items():
        if peer == node.id:
            active += peer in node.log.configuration.voters
        elif peer in node.log.configuration.voters and pr.recent_active:
            active += 1
        pr.recent_active = False
    return active >= node.quorum()


def _send_snapshot(node: RaftNode, to_id: NodeId, pr: Progress) -> None:
    snapshot = node.log.snapshot()
    pr.become_snapshot(snapshot.index)
    node.send(InstallSnapshot(node.term, node.id, to_id, snapshot))


def _changed(configuration: Configuration, change: ConfChange) -> Configuration:
    voters, learners, node_id = configuration.voters, configuration.learners, change.node_id
    if change.type is ConfChangeType.ADD_LEARNER:
        if node_id in configuration.members:
            raise InvalidConfChange(f"{node_id} is already a member")
        return Configuration(voters, learners | {node_id})
    if change.type is ConfChangeType.PROMOTE:
        if node_id not in learners:
            raise InvalidConfChange(f"{node_id} is not a learner; add it as a learner first")
        return Configuration(voters | {node_id}, learners - {node_id})
    if node_id not in configuration.members:
        raise InvalidConfChange(f"{node_id} is not a member")
    if voters == {node_id}:
        raise InvalidConfChange(f"{node_id} is the last voter; the cluster would have none")
    return Configuration(voters - {node_id}, learners - {node_id})
