"""The messages Raft nodes exchange: one frozen dataclass per kind.

Every message names its sender (`from_id`), its receiver (`to_id`) and the
sender's term. The node's transport maps them to proto/logmesh/v1/raft.proto;
the core never sees bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..log.entry import Entry
from .types import SnapshotMeta


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Leader -> follower/learner: entries after (prev_index, prev_term), and the commit index.

    With no entries it is a probe. Heartbeats are a separate kind (Heartbeat).
    """

    term: int
    from_id: str
    to_id: str
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit_index: int


@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    """Follower -> leader. Accepted: `index` is the last index now matching the leader
    (durable: this message leaves only after persistence). Rejected: `index` is the
    prev_index that did not match, `hint_index`/`hint_term` help the leader skip back
    fast (the follower's last index with a term <= hint_term)."""

    term: int
    from_id: str
    to_id: str
    index: int
    reject: bool
    hint_index: int = 0
    hint_term: int = 0


@dataclass(frozen=True, slots=True)
class RequestVote:
    """Candidate -> voter. `pre_vote`: a trial election that changes no term or vote.
    `transfer`: the leader asked for this election (TimeoutNow), so voters grant it
    even while they still hear from a leader."""

    term: int
    from_id: str
    to_id: str
    last_index: int
    last_term: int
    pre_vote: bool = False
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    term: int
    from_id: str
    to_id: str
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader -> member: keeps authority (check-quorum) and confirms ReadIndex `context`."""

    term: int
    from_id: str
    to_id: str
    commit_index: int
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    term: int
    from_id: str
    to_id: str
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Leader -> member whose next entry the leader no longer has: restart your log
    after `snapshot` (it is metadata only; see types.SnapshotMeta). The receiver
    answers with AppendEntriesResponse(index=snapshot.index) after persisting."""

    term: int
    from_id: str
    to_id: str
    snapshot: SnapshotMeta


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leader -> chosen successor: campaign now (leadership transfer)."""

    term: int
    from_id: str
    to_id: str


Message = (
    AppendEntries
    | AppendEntriesResponse
    | RequestVote
    | RequestVoteResponse
    | Heartbeat
    | HeartbeatResponse
    | InstallSnapshot
    | TimeoutNow
)
