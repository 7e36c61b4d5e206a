"""Errors the Raft core raises to its caller (the node driver, the simulator, tests).

Each says what happened and what the caller should do. Only caller mistakes and
conditions the caller must react to are errors: a broken invariant inside the core
is an AssertionError and is never caught. No grpc status codes here: the node's
servicers map these to gRPC.
"""

from __future__ import annotations

from .types import NodeId


class RaftError(Exception):
    """Base of every error the Raft core raises on purpose."""


class NotLeader(RaftError):  # noqa: N818 (names from the API contract)
    """This node is not the leader, so it cannot take proposals or reads.

    `leader_id` is the leader this node last heard from (None if unknown):
    redirect the client there, or answer NO_LEADER and let it retry later.
    """

    def __init__(self, leader_id: NodeId | None) -> None:
        self.leader_id = leader_id
        hint = f"send it to leader {leader_id}" if leader_id else "no leader is known; retry later"
        super().__init__(f"this node is not the Raft leader: {hint}")


class ProposalDropped(RaftError):  # noqa: N818 (names from the API contract)
    """The leader is handing leadership over and takes no proposals meanwhile.

    Nothing was appended: it is safe to retry at the new leader once it is known.
    """

    def __init__(self, reason: str = "a leadership transfer is in progress") -> None:
        super().__init__(
            f"proposal dropped, nothing was appended ({reason}); retry at the new leader"
        )


class ConfChangeInProgress(RaftError):  # noqa: N818 (names from the API contract)
    """An earlier membership change is not committed yet; only one may be pending.

    Retry once the pending change (at `pending_index`) has committed.
    """

    def __init__(self, pending_index: int) -> None:
        self.pending_index = pending_index
        super().__init__(
            f"a membership change at index {pending_index} is not committed yet; "
            "retry after it commits"
        )


class InvalidConfChange(RaftError):  # noqa: N818 (names from the API contract)
    """The membership change makes no sense for the current configuration (adding a
    member twice, promoting a non-learner, removing the last voter...). Nothing was
    appended; fix the request."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid membership change: {detail}")


class InvalidTransfer(RaftError):  # noqa: N818 (names from the API contract)
    """Leadership cannot be handed to that node (not a voter, or unknown)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid leadership transfer: {detail}")


class LogCompacted(RaftError):  # noqa: N818 (names from the API contract)
    """Storage no longer holds `index`: it is at or below the snapshot.

    The core reacts by sending InstallSnapshot; other callers should read from
    first_index() on.
    """

    def __init__(self, index: int, first_index: int) -> None:
        self.index = index
        self.first_index = first_index
        super().__init__(f"raft index {index} was compacted; the log starts at {first_index}")


class IndexUnavailable(RaftError):  # noqa: N818 (names from the API contract)
    """Storage does not hold `index` yet: it is past the last index."""

    def __init__(self, index: int, last_index: int) -> None:
        self.index = index
        self.last_index = last_index
        super().__init__(
            f"raft index {index} is past the last index {last_index}; wait for it to be appended"
        )
