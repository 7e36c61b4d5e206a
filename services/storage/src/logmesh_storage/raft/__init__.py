"""The sans-IO Raft core (DESIGN §4): RaftNode plus the values it takes and gives.

Drive it with tick/step/propose/read_index; read its output with ready()/advance().
Nothing in this package does I/O. See docs/raft.md.
"""

from .config import RaftConfig
from .errors import (
    ConfChangeInProgress,
    IndexUnavailable,
    InvalidConfChange,
    InvalidTransfer,
    LogCompacted,
    NotLeader,
    ProposalDropped,
    RaftError,
)
from .memory import MemoryStorage
from .messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from .node import RaftNode
from .progress import ProgressState, ProgressView
from .ready import Ready
from .status import Status
from .storage import RaftStorage, WritableRaftStorage
from .types import (
    ConfChange,
    ConfChangeType,
    Configuration,
    HardState,
    NodeId,
    ReadState,
    Role,
    SnapshotMeta,
    SoftState,
)

__all__ = [
    "AppendEntries",
    "AppendEntriesResponse",
    "ConfChange",
    "ConfChangeInProgress",
    "ConfChangeType",
    "Configuration",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "IndexUnavailable",
    "InstallSnapshot",
    "InvalidConfChange",
    "InvalidTransfer",
    "LogCompacted",
    "MemoryStorage",
    "Message",
    "NodeId",
    "NotLeader",
    "ProgressState",
    "ProgressView",
    "ProposalDropped",
    "RaftConfig",
    "RaftError",
    "RaftNode",
    "RaftStorage",
    "ReadState",
    "Ready",
    "RequestVote",
    "RequestVoteResponse",
    "Role",
    "SnapshotMeta",
    "SoftState",
    "Status",
    "TimeoutNow",
    "WritableRaftStorage",
]
