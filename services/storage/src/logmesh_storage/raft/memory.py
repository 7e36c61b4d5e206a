"""MemoryStorage: the in-memory twin of the node's log-engine storage.

For tests and the simulator. Everything saved is "durable" at once; a simulated
crash keeps only a `copy()` taken at the last save. No I/O. Entries are frozen,
so copying is a list copy, never a deep copy.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..log.entry import Entry, EntryType
from .errors import IndexUnavailable, LogCompacted
from .types import Configuration, HardState, NodeId, SnapshotMeta


class MemoryStorage:
    """Implements WritableRaftStorage. `entries[i]` has index `snapshot.index + 1 + i`."""

    def __init__(
        self,
        snapshot: SnapshotMeta | None = None,
        hard_state: HardState | None = None,
        entries: Sequence[Entry] = (),
    ) -> None:
        self._snapshot = snapshot if snapshot is not None else SnapshotMeta()
        self._hard_state = hard_state if hard_state is not None else HardState()
        self._entries: list[Entry] = []
        self._append(entries)

    @classmethod
    def bootstrap(cls, voters: Sequence[NodeId]) -> MemoryStorage:
        """A fresh member of a new cluster whose voters are `voters`."""
        return cls(SnapshotMeta(0, 0, Configuration(voters=frozenset(voters)), 0))

    def copy(self) -> MemoryStorage:
        """An independent copy (what survives a crash)."""
        twin = MemoryStorage(self._snapshot, self._hard_state)
        twin._entries = list(self._entries)
        return twin

    # RaftStorage

    def initial_state(self) -> tuple[HardState, Configuration]:
        return self._hard_state, self._configuration_at(self.last_index())

    def snapshot(self) -> SnapshotMeta:
        return self._snapshot

    def first_index(self) -> int:
        return self._snapshot.index + 1

    def last_index(self) -> int:
        return self._snapshot.index + len(self._entries)

    def term(self, index: int) -> int:
        if index < self._snapshot.index:
            raise LogCompacted(index, self.first_index())
        if index > self.last_index():
            raise IndexUnavailable(index, self.last_index())
        if index == self._snapshot.index:
            return self._snapshot.term
        return self._entries[index - self.first_index()].term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        if lo < self.first_index():
            raise LogCompacted(lo, self.first_index())
        if hi > self.last_index() + 1:
            raise IndexUnavailable(hi - 1, self.last_index())
        out: list[Entry] = []
        size = 0
        for entry in self._entries[lo - self.first_index() : hi - self.first_index()]:
            size += len(entry.payload)
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    # WritableRaftStorage

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None,
    ) -> None:
        if snapshot is not None:
            assert snapshot.index >= self._snapshot.index, "snapshot went back"
            self._snapshot = snapshot
            self._entries = []
        self._append(entries)
        if hard_state is not None:
            assert hard_state.term >= self._hard_state.term, "term went back"
            assert hard_state.commit_index >= self._hard_state.commit_index, "commit went back"
            self._hard_state = hard_state

    # Compaction (retention): the simulator and tests call it; the core never does.

    def compact(self, index: int) -> None:
        """Drop entries up to and including `index` (which must be committed), recording
        the SnapshotMeta that describes the dropped prefix."""
        if index <= self._snapshot.index:
            return
        assert index <= self._hard_state.commit_index, "cannot compact uncommitted entries"
        assert index <= self.last_index(), "cannot compact past the last index"
        last_dropped = self._entries[index - self.first_index()]
        kept = self._entries[index + 1 - self.first_index() :]
        self._snapshot = SnapshotMeta(
            index=index,
            term=last_dropped.term,
            configuration=self._configuration_at(index),
            next_offset=last_dropped.next_offset,
        )
        self._entries = kept

    def _configuration_at(self, index: int) -> Configuration:
        for entry in reversed(self._entries[: index - self._snapshot.index]):
            if entry.type is EntryType.CONFIG:
                return Configuration.decode(entry.payload)
        return self._snapshot.configuration

    def _append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        assert self.first_index() <= first <= self.last_index() + 1, (
            f"append at {first} leaves a gap or rewrites the snapshot "
            f"(log is [{self.first_index()}, {self.last_index()}])"
        )
        if first <= self.last_index():
            assert first > self._hard_state.commit_index, "cannot truncate committed entries"
        del self._entries[first - self.first_index() :]
        for expected, entry in enumerate(entries, start=first):
            assert entry.index == expected, "entries must be contiguous"
        self._entries.extend(entries)
