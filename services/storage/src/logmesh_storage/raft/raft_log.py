"""RaftLog: the node's view of its log = stable storage + the unstable tail (etcd's raftLog).

Unstable entries (and an unstable snapshot) were appended by the core but not yet
persisted by the driver; they leave in a Ready and become stable in advance().
Also tracks commit_index and applied_index, and the configuration history (a
configuration takes effect when its entry is appended, so a truncation can undo it).
This module reads storage only; it never writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter

from ..log.entry import Entry, EntryType
from .errors import IndexUnavailable, LogCompacted
from .storage import RaftStorage
from .types import Configuration, SnapshotMeta

_SCAN_BYTES = 1 << 22
_SCAN_ENTRIES = 4096


_payload = attrgetter("payload")
_type = attrgetter("type")


def payload_bytes(entries: Iterable[Entry]) -> int:
    """The payload bytes of `entries`, summed in C: this runs over every entry a leader
    ships or applies (docs/raft.md, "Performance notes")."""
    return sum(map(len, map(_payload, entries)))


def take_within(out: list[Entry], more: list[Entry], max_bytes: int) -> list[Entry]:
    """`out` extended with the leading entries of `more` while the payload of all stays
    within max_bytes; always at least one entry when `more` has any."""
    size = payload_bytes(out)
    if size + payload_bytes(more) <= max_bytes:
        out.extend(more)  # the usual case: the whole run fits
        return out
    for entry in more:
        size += len(entry.payload)
        if out and size > max_bytes:
            break
        out.append(entry)
    return out


class RaftLog:
    def __init__(
        self,
        storage: RaftStorage,
        commit_index: int,
        applied_index: int,
        configuration: Configuration | None = None,
    ) -> None:
        """`configuration`: the one in force at the last stored index, as
        storage.initial_state() gives it (None: read it from the log)."""
        self.storage = storage
        self.unstable_entries: list[Entry] = []
        self.unstable_snapshot: SnapshotMeta | None = None
        # index of unstable_entries[0]; everything below it is in storage
        self.unstable_offset = storage.last_index() + 1
        first = storage.first_index()
        assert first - 1 <= commit_index <= storage.last_index(), "stored commit is out of the log"
        self.commit_index = commit_index
        self.applied_index = max(applied_index, first - 1)
        assert self.applied_index <= commit_index, "applied beyond commit"
        self.config_history = self._load_config_history(configuration)

    # reading

    def snapshot(self) -> SnapshotMeta:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot
        return self.storage.snapshot()

    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable_entries:
            return self.unstable_entries[-1].index
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.index
        return self.storage.last_index()

    def stable_last_index(self) -> int:
        """The last index whose entry is durable (and matches this log)."""
        return self.unstable_offset - 1

    def term(self, index: int) -> int | None:
        """The term at `index`, or None if it is compacted or past the end."""
        if index < self.first_index() - 1 or index > self.last_index():
            return None
        if index >= self.unstable_offset:
            return self.unstable_entries[index - self.unstable_offset].term
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.term if index == self.unstable_snapshot.index else None
        try:
            return self.storage.term(index)
        except (LogCompacted, IndexUnavailable):
            return None

    def last_term(self) -> int:
        term = self.term(self.last_index())
        assert term is not None, "the last entry always has a term"
        return term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§5.4.1: a candidate's log is at least as up to date as ours."""
        our_term = self.last_term()
        return last_term > our_term or (last_term == our_term and last_index >= self.last_index())

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries [lo, hi), at least one if lo < hi, at most max_bytes of payload after it.
        Raises LogCompacted if lo is below first_index()."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise LogCompacted(lo, self.first_index())
        assert hi <= self.last_index() + 1, "reading past the last index"
        out: list[Entry] = []
        if lo < self.unstable_offset:
            out = self.storage.entries(lo, min(hi, self.unstable_offset), max_bytes)
            if hi <= self.unstable_offset or out[-1].index < self.unstable_offset - 1:
                return out  # all stored, or the byte limit cut the stored part short
        return take_within(out, self._unstable_slice(lo, hi), max_bytes)

    def _unstable_slice(self, lo: int, hi: int) -> list[Entry]:
        start = max(lo, self.unstable_offset)
        return self.unstable_entries[start - self.unstable_offset : hi - self.unstable_offset]

    def next_offset(self) -> int:
        """The record offset the next DATA entry gets."""
        last = self.last_index()
        if last == self.first_index() - 1:
            return self.snapshot().next_offset
        return self.entries(last, last + 1, 0)[0].next_offset

    @property
    def configuration(self) -> Configuration:
        return self.config_history[-1][1]

    @property
    def configuration_index(self) -> int:
        return self.config_history[-1][0]

    def next_committed_entries(self, max_bytes: int) -> list[Entry]:
        lo = max(self.applied_index, self.first_index() - 1) + 1
        return self.entries(lo, self.commit_index + 1, max_bytes)

    # changing

    def append(self, entries: Sequence[Entry]) -> None:
        """Append (truncating any conflicting suffix first) to the unstable tail."""
        if not entries:
            return
        first = entries[0].index
        assert first > self.commit_index, (
            f"truncating at {first} would lose committed entry (commit {self.commit_index})"
        )
        assert first <= self.last_index() + 1, "append leaves a gap"
        if first < self.unstable_offset:
            self.unstable_offset = first
            self.unstable_entries = []
        else:
            del self.unstable_entries[first - self.unstable_offset :]
        self.unstable_entries.extend(entries)
        while self.config_history[-1][0] >= first:
            self.config_history.pop()
            assert self.config_history, "the snapshot's configuration is never truncated"
        self._note_configs(entries)

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """The index of the first entry that is new or conflicts with ours; 0 if none."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def maybe_append(
        self, prev_index: int, prev_term: int, commit_index: int, entries: Sequence[Entry]
    ) -> int | None:
        """§5.3 AppendEntries receiver: None if (prev_index, prev_term) does not match,
        else the last index now known to match the leader."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            self.append(entries[conflict - prev_index - 1 :])
        self.commit_to(min(commit_index, last_new))
        return last_new

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= `index` whose term is <= `term` (or where the log's
        known terms end): the fast back-off of §5.3's optimization."""
        index = min(index, self.last_index())
        while index >= self.first_index():
            found = self.term(index)
            if found is None or found <= term:
                break
            index -= 1
        return index

    def commit_to(self, index: int) -> None:
        if index > self.commit_index:
            assert index <= self.last_index(), "commit beyond the last index"
            self.commit_index = index

    def applied_to(self, index: int) -> None:
        assert self.applied_index <= index <= self.commit_index, "applied out of order"
        self.applied_index = index

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted entries up to (index, term); a stale report (the entry
        was truncated and replaced meanwhile) changes nothing."""
        if index < self.unstable_offset or self.term(index) != term:
            return
        del self.unstable_entries[: index + 1 - self.unstable_offset]
        self.unstable_offset = index + 1

    def stable_written(self, written: Sequence[Entry]) -> None:
        """The driver persisted `written` (a Ready's entries). If a newer leader replaced
        part of that tail while it was being written, the prefix before the replacement is
        stable all the same: the next Ready writes only the replacement. (Treating the whole
        write as stale would make the next Ready rewrite that prefix, entries that may be
        committed by then: a truncation of committed entries on disk.) An entry still here
        with the index and term it was written with is the entry written, and so is every
        entry before it (Log Matching, §5.3)."""
        if not written:
            return
        for entry in reversed(written):
            if entry.index < self.unstable_offset:
                return
            if self.term(entry.index) == entry.term:
                self.stable_to(entry.index, entry.term)
                return

    def stable_snapshot_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.index == index:
            self.unstable_snapshot = None
            self.applied_index = max(self.applied_index, index)

    def restore(self, snapshot: SnapshotMeta) -> None:
        """§7: drop the whole log and restart it after `snapshot` (committed)."""
        assert snapshot.index > self.commit_index, "restoring a snapshot we already have"
        self.unstable_snapshot = snapshot
        self.unstable_entries = []
        self.unstable_offset = snapshot.index + 1
        self.commit_index = snapshot.index
        self.config_history = [(snapshot.index, snapshot.configuration)]

    def _note_configs(self, entries: Sequence[Entry]) -> None:
        config = EntryType.CONFIG
        if config not in map(_type, entries):  # in C: this runs for every appended entry
            return
        for entry in entries:
            if entry.type is config:
                self.config_history.append((entry.index, Configuration.decode(entry.payload)))

    def _load_config_history(
        self, configuration: Configuration | None
    ) -> list[tuple[int, Configuration]]:
        """Startup. Only CONFIG entries above the commit index can be truncated (and so
        undone): read that short tail; read further back only if it holds any, to find
        the configuration they replaced. The base's index is that of the snapshot: any
        index at or below commit means "committed" to the rest of the core."""
        base_index = self.storage.first_index() - 1
        tail = [
            e
            for e in self._stored(self.commit_index + 1, self.storage.last_index() + 1)
            if e.type is EntryType.CONFIG
        ]
        if not tail and configuration is not None:
            return [(base_index, configuration)]
        history = [(base_index, self._stored_configuration_at(self.commit_index))]
        history += [(e.index, Configuration.decode(e.payload)) for e in tail]
        return history

    def _stored_configuration_at(self, index: int) -> Configuration:
        hi = index + 1
        first = self.storage.first_index()
        while hi > first:
            lo = max(first, hi - _SCAN_ENTRIES)
            configs = [e for e in self._stored(lo, hi) if e.type is EntryType.CONFIG]
            if configs:
                return Configuration.decode(configs[-1].payload)
            hi = lo
        return self.storage.snapshot().configuration

    def _stored(self, lo: int, hi: int) -> list[Entry]:
        found: list[Entry] = []
        while lo < hi:
            chunk = self.storage.entries(lo, hi, _SCAN_BYTES)
            found.extend(chunk)
            lo = chunk[-1].index + 1
        return found
