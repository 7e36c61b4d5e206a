"""RaftConfig: the core's tunables, in ticks, counts and bytes. Pure data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RaftConfig:
    """election_timeout_ticks: a follower campaigns after a randomized [t, 2t) ticks of
        silence from a leader; a leader checks quorum and abandons a transfer every t ticks.
    heartbeat_interval_ticks: how often a leader sends heartbeats (keep it << the timeout).
    max_entries_per_message / max_bytes_per_message: the batch bound of one AppendEntries
        (always at least one entry); max_bytes also bounds committed_entries per Ready.
    max_inflight_messages: pipelined AppendEntries a follower may have unacknowledged.
    pre_vote: thesis §9.6, a trial election before bumping the term.
    check_quorum: thesis §6.2 / §9.6, a leader that cannot hear a majority for an election
        timeout steps down, and followers that hear a leader ignore vote requests (lease).
    defer_commit_notices: when the commit index moves and a follower has no entries to be
        sent, do not send it an empty AppendEntries at once: the driver calls
        send_commit_notices() a little later, unless the next AppendEntries (which carries
        the commit index) made it needless. Under load every commit otherwise costs two
        messages per follower (the notice and its answer).
    quiet_heartbeats: skip a follower's heartbeat when an AppendEntries went to it since the
        last heartbeat round (it carried the same term and commit index, and its answer shows
        the follower alive), unless a ReadIndex round needs the heartbeat. Under load this
        saves the heartbeat, its answer and the empty AppendEntries that answer triggers.
    """

    election_timeout_ticks: int = 10
    heartbeat_interval_ticks: int = 1
    max_entries_per_message: int = 512
    max_bytes_per_message: int = 1 << 20
    max_inflight_messages: int = 256
    pre_vote: bool = True
    check_quorum: bool = True
    defer_commit_notices: bool = False
    quiet_heartbeats: bool = False

    def __post_init__(self) -> None:
        if self.heartbeat_interval_ticks < 1:
            raise ValueError("heartbeat_interval_ticks must be >= 1")
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks:
            raise ValueError("election_timeout_ticks must be greater than heartbeat_interval_ticks")
        if self.max_entries_per_message < 1 or self.max_inflight_messages < 1:
            raise ValueError("max_entries_per_message and max_inflight_messages must be >= 1")
        if self.max_bytes_per_message < 1:
            raise ValueError("max_bytes_per_message must be >= 1")
