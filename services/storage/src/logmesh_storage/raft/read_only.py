"""ReadOnly: the leader's pending ReadIndex requests (Raft thesis §6.4).

A read at `index` (the commit index when it arrived) is safe once a quorum of
voters answered a heartbeat sent after it arrived: then no newer leader can have
committed anything we do not know. Requests are released in arrival order. Requests
that arrive before the leader committed an entry of its term wait for that commit
first (the commit index is not yet known to be current). Pure bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import NodeId, ReadState


@dataclass(slots=True)
class ReadRequest:
    index: int
    context: bytes
    acks: set[NodeId] = field(default_factory=set)


class ReadOnly:
    def __init__(self) -> None:
        self.pending: dict[bytes, ReadRequest] = {}  # insertion order = arrival order
        self.waiting_for_commit: list[bytes] = []

    def clear(self) -> None:
        """On a role change, pending reads are dropped: their callers time out and retry."""
        self.pending.clear()
        self.waiting_for_commit.clear()

    def add(self, index: int, context: bytes, own_id: NodeId) -> bool:
        """False if a request with this context is already pending (contexts are keys)."""
        if context in self.pending:
            return False
        self.pending[context] = ReadRequest(index, context, {own_id})
        return True

    def last_pending_context(self) -> bytes:
        """The context a heartbeat carries: an ack of it acks every earlier request too."""
        return next(reversed(self.pending)) if self.pending else b""

    def ack(self, context: bytes, from_id: NodeId) -> set[NodeId]:
        request = self.pending.get(context)
        if request is None:
            return set()
        request.acks.add(from_id)
        return request.acks

    def release_through(self, context: bytes) -> list[ReadState]:
        """Release `context` and every request that arrived before it."""
        released: list[ReadState] = []
        while self.pending:
            key = next(iter(self.pending))
            request = self.pending.pop(key)
            released.append(ReadState(request.index, request.context))
            if key == context:
                break
        return released
