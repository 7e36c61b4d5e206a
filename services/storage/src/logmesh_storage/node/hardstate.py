"""The Raft hard state (term, vote, commit index) on disk, written atomically.

Raft's safety depends on a node never forgetting a term or a vote it has acted on, so the file
is replaced with write_atomic (fsync before rename, directory fsync after) before any message
that depends on it leaves the node. No caching here: the adapter decides when to write.
"""

from __future__ import annotations

from pathlib import Path

from ..raft.types import HardState
from .atomicfile import read_json, write_json
from .errors import NodeStateError

FILE_NAME = "hardstate.json"
FORMAT_VERSION = 1


class HardStateFile:
    """Loads and saves HardState in `<data_dir>/hardstate.json`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def load(self) -> HardState:
        """The saved hard state, or HardState() for a node that never saved one."""
        raw = read_json(self.path)
        if raw is None:
            return HardState()
        try:
            if raw["version"] != FORMAT_VERSION:
                raise NodeStateError(
                    f"{self.path} has format version {raw['version']}, this node reads "
                    f"{FORMAT_VERSION}: run the logmesh version that wrote it"
                )
            vote = raw["vote"]
            return HardState(term=int(raw["term"]), vote=vote, commit_index=int(raw["commit"]))
        except (KeyError, TypeError, ValueError) as e:
            raise NodeStateError(
                f"{self.path} lacks a valid term/vote/commit ({e!r}): restore or wipe the data dir"
            ) from e

    def save(self, hard_state: HardState) -> None:
        """Durable on return."""
        assert hard_state.term >= 0 and hard_state.commit_index >= 0, hard_state
        write_json(
            self.path,
            {
                "version": FORMAT_VERSION,
                "term": hard_state.term,
                "vote": hard_state.vote,
                "commit": hard_state.commit_index,
            },
        )
