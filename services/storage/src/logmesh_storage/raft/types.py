"""Values the Raft core takes in and gives out: node ids, hard state, configuration,
snapshot metadata, soft state. Pure data, frozen and validated; no behaviour beyond encoding.

Names follow the Raft paper (term, commit_index, match_index); units last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

NodeId = str


class Role(Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before any message that depends on it leaves the node."""

    term: int = 0
    vote: NodeId | None = None
    commit_index: int = 0


@dataclass(frozen=True, slots=True)
class Configuration:
    """Cluster membership. Voters elect and commit; learners only receive the log.

    A node is never both. An empty configuration (no voters) is that of a node that
    has not yet been told its cluster: it never campaigns and waits to be contacted.
    """

    voters: frozenset[NodeId] = frozenset()
    learners: frozenset[NodeId] = frozenset()

    def __post_init__(self) -> None:
        both = self.voters & self.learners
        if both:
            raise ValueError(f"nodes cannot be voter and learner at once: {sorted(both)}")

    @property
    def members(self) -> frozenset[NodeId]:
        return self.voters | self.learners

    def encode(self) -> bytes:
        """The payload of a CONFIG entry (stable, sorted JSON)."""
        return json.dumps(
            {"voters": sorted(self.voters), "learners": sorted(self.learners)},
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, payload: bytes) -> Configuration:
        raw = json.loads(payload)
        return cls(voters=frozenset(raw["voters"]), learners=frozenset(raw["learners"]))


class ConfChangeType(Enum):
    ADD_LEARNER = "add-learner"  # a new node: receives the log, does not vote
    PROMOTE = "promote"  # learner -> voter, once caught up
    REMOVE = "remove"  # voter or learner leaves


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: NodeId


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """The whole of a snapshot: the log is the state, so a snapshot is metadata.

    It describes the compacted prefix of the log: everything up to and including
    `index` (of `term`) is gone; `configuration` is the membership in force at
    `index`; `next_offset` is the offset of the first data entry after `index`.
    A fresh node has SnapshotMeta() (index 0, term 0) with the bootstrap configuration.
    """

    index: int = 0
    term: int = 0
    configuration: Configuration = Configuration()
    next_offset: int = 0


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex answer: once applied_index >= index, a read is linearizable for `context`."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the driver may show (GetServers, health, metrics, discovery tags)."""

    leader_id: NodeId | None
    role: Role
