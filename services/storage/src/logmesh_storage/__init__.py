"""logmesh storage node: the segmented log engine (`log/`), the sans-IO Raft core (`raft/`)
and the node that serves them over gRPC."""
