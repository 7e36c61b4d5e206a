"""Errors of the storage node: its own failures (bad configuration, damaged state on disk, a
refused Raft peer) and the one wire error only storage nodes send (PEER_REFUSED).

Client-facing wire errors are logmesh.errors classes. Each message says what happened and what
to do.
"""

from __future__ import annotations

import grpc

from logmesh.errors import LogmeshError


class NodeError(Exception):
    """Base of the node's own errors."""


class ConfigError(NodeError):
    """A flag or environment variable has a bad value; the node exits with status 2."""


class ListenError(NodeError):
    """The node cannot listen on its --listen address."""


class NodeStateError(NodeError):
    """A node state file (hard state, snapshot meta, peers) is unreadable or inconsistent."""


class PeerRefusedError(NodeError):
    """A Raft batch came from another cluster, another protocol version or for another node."""


class PeerRefusedWireError(LogmeshError):
    """The wire form of PeerRefusedError: the stream is refused; the sender must fix its setup."""

    code = "PEER_REFUSED"
    status_code = grpc.StatusCode.FAILED_PRECONDITION
    default_message = "the Raft peer was refused: check --cluster-id, versions and certificates"
