"""The seam between the Raft core and the log it runs on.

The core only reads through RaftStorage; the driver writes (it persists what a
Ready asks for, then calls advance). Two implementations: MemoryStorage (memory.py,
for tests and the simulator) and the node's adapter over the log engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..log.entry import Entry
from .types import Configuration, HardState, SnapshotMeta


class RaftStorage(Protocol):
    def initial_state(self) -> tuple[HardState, Configuration]:
        """The durable hard state, and the configuration in force: that of the last
        CONFIG entry in the log, or the snapshot's if the log holds none."""
        ...

    def snapshot(self) -> SnapshotMeta:
        """The metadata of the compacted prefix: index == first_index() - 1."""
        ...

    def first_index(self) -> int:
        """The first index still in the log (snapshot().index + 1)."""
        ...

    def last_index(self) -> int:
        """The last index in the log, or snapshot().index if the log is empty."""
        ...

    def term(self, index: int) -> int:
        """The term at `index`, for snapshot().index <= index <= last_index().
        Raises errors.LogCompacted below that range, errors.IndexUnavailable above."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries [lo, hi), stopping before max_bytes of payload is passed, but
        always at least one. Raises errors.LogCompacted if lo < first_index()."""
        ...


class WritableRaftStorage(RaftStorage, Protocol):
    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None,
    ) -> None:
        """Make a Ready's persistent part durable, in the order Ready documents:
        reset to `snapshot` if given, truncate from entries[0].index if it overlaps,
        append `entries`, write `hard_state` if given. Durable on return."""
        ...
