"""Status: a frozen snapshot of a node's Raft state, for Admin.Status, metrics and tests.
Pure data: reading it changes nothing in the core."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .progress import ProgressView
from .types import Configuration, NodeId, Role


@dataclass(frozen=True)
class Status:
    node_id: NodeId
    term: int
    role: Role
    leader_id: NodeId | None
    commit_index: int
    applied_index: int
    last_index: int
    configuration: Configuration
    # per member (the leader itself included) when this node leads; empty otherwise
    progress: Mapping[NodeId, ProgressView] = field(default_factory=dict)
