"""The Raft core's storage on a real disk: WritableRaftStorage over the log engine.

The log engine is the Raft log (DESIGN §3): entries are written once, by `save`, in one append
and one fsync per Ready. Beside it live two small atomically written files in `<data>/raft/`:
the hard state (hardstate.py) and the configuration history (`configs.json`: the membership in
force at the log's base, which the engine's base (index, term, next_offset) lacks).

Threads: `save`, `apply_retention` and `close` run in the driver's single writer thread;
everything else runs on the event loop or in reader threads. Every engine call holds `_lock`,
and the Raft reads the loop makes most (term, recent entries) are served from `_recent`, a
bounded cache the writer fills after each durable append, so the loop rarely waits for an fsync.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from ..log.config import LogConfig
from ..log.entry import Entry, RecordBlock
from ..log.errors import IndexCompacted, IndexOutOfRange
from ..log.fs import OsFileSystem
from ..log.log import Log
from ..raft.errors import IndexUnavailable, LogCompacted
from ..raft.raft_log import take_within
from ..raft.types import Configuration, HardState, SnapshotMeta
from .atomicfile import read_json, write_json
from .errors import NodeStateError
from .frames import FrameCache
from .hardstate import HardStateFile

RECENT_ENTRIES_MAX = 8192
COMMIT_WRITE_INTERVAL_S = 1.0
CONFIGS_FILE = "configs.json"


class LogRaftStorage:
    """WritableRaftStorage over a Log, plus the node's reads by record offset."""

    def __init__(self, log: Log, raft_dir: Path, configs: list[tuple[int, Configuration]]):
        self._log = log
        self._lock = threading.Lock()
        self._hard_state_file = HardStateFile(raft_dir)
        self._hard_state = self._hard_state_file.load()  # the newest, maybe not yet on disk
        self._durable_hard_state = self._hard_state
        self._durable_at_s = time.monotonic()
        self.commit_write_interval_s = COMMIT_WRITE_INTERVAL_S
        self._configs_path = raft_dir / CONFIGS_FILE
        # (index, configuration) in force from that index on, oldest first; the first one is at
        # or below the log's base. Only configurations at or below the base live here; later
        # ones are CONFIG entries of the log.
        self._configs = configs
        self._recent: dict[int, Entry] = {}
        # Frames shipped or received for entries not yet saved: written as they are.
        self.frames = FrameCache()
        self._note_base()
        self._last_index = log.last_index

    @classmethod
    def open(
        cls, data_dir: Path, log_config: LogConfig, bootstrap_voters: Sequence[str] = ()
    ) -> LogRaftStorage:
        """Open (or create) `<data_dir>/log` and `<data_dir>/raft`. `bootstrap_voters` is the
        configuration of a brand-new cluster; ignored when the node already has state."""
        raft_dir = data_dir / "raft"
        raft_dir.mkdir(parents=True, exist_ok=True)
        log = Log.open(OsFileSystem(), str(data_dir / "log"), log_config)
        configs = _load_configs(raft_dir / CONFIGS_FILE)
        if configs is None:
            fresh = log.last_index == 0 and log.base.index == 0
            if not fresh:
                raise NodeStateError(
                    f"{raft_dir / CONFIGS_FILE} is missing but the log holds entries: the data "
                    "directory is incomplete; restore it or wipe it and rejoin the cluster"
                )
            voters = frozenset(bootstrap_voters)
            configs = [(0, Configuration(voters=voters))]
            write_json(raft_dir / CONFIGS_FILE, _encode_configs(configs))
        return cls(log, raft_dir, configs)

    def _note_base(self) -> None:
        base = self._log.base
        self._base_index, self._base_term, self._base_next_offset = (
            base.index,
            base.term,
            base.next_offset,
        )

    def is_new(self) -> bool:
        """True if this node has never been part of a cluster (no term, no entries)."""
        return self._hard_state.term == 0 and self._last_index == 0 and self._base_index == 0

    # ---- RaftStorage -----------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, Configuration]:
        # Everything up to the base is committed (only committed entries are compacted), but
        # the commit index on disk may lag it: it is written lazily, and a crash can fall
        # between a reset or retention and the next hard state write.
        hs = self._hard_state
        hard_state = HardState(hs.term, hs.vote, max(hs.commit_index, self._base_index))
        with self._lock:
            indices = self._log.config_indices()
            if indices:
                entry = self._log.entry(indices[-1])
                return hard_state, Configuration.decode(entry.payload)
        return hard_state, self._config_at_base()

    def snapshot(self) -> SnapshotMeta:
        return SnapshotMeta(
            self._base_index, self._base_term, self._config_at_base(), self._base_next_offset
        )

    def first_index(self) -> int:
        return self._base_index + 1

    def last_index(self) -> int:
        return self._last_index

    def term(self, index: int) -> int:
        if index == self._base_index:
            return self._base_term
        if index < self._base_index:
            raise LogCompacted(index, self.first_index())
        if index > self._last_index:
            raise IndexUnavailable(index, self._last_index)
        cached = self._recent.get(index)
        if cached is not None:
            return cached.term
        with self._lock:
            return self._log.term_at(index)

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        if lo <= self._base_index:
            raise LogCompacted(lo, self.first_index())
        if hi > self._last_index + 1:
            raise IndexUnavailable(hi - 1, self._last_index)
        cached = self._cached_entries(lo, hi, max_bytes)
        if cached is not None:
            return cached
        with self._lock:
            try:
                return self._log.entries(lo, hi, max_bytes)
            except IndexCompacted as e:
                raise LogCompacted(lo, e.first_index) from None
            except IndexOutOfRange as e:
                raise IndexUnavailable(hi - 1, e.last_index) from None

    def _cached_entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry] | None:
        # Loops in C (map, all): a leader reads every entry it applies from here. The writer
        # thread may add or trim entries meanwhile: a miss (None) falls back to the log.
        found = list(map(self._recent.get, range(lo, hi)))
        if not all(found):
            return None
        return take_within([], cast(list[Entry], found), max_bytes)

    # ---- WritableRaftStorage (writer thread) -----------------------------------------------

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None,
    ) -> None:
        with self._lock:
            if snapshot is not None:
                self._reset(snapshot)
            if entries:
                self._append(entries)
            if hard_state is not None:
                self._hard_state = hard_state
                if self.hard_state_needs_write(hard_state):
                    self._write_hard_state()

    def hard_state_needs_write(self, hard_state: HardState) -> bool:
        """Term and vote must be durable before anything depending on them leaves the node;
        the commit index need not be (a restarted node relearns it from the leader, and a
        stale one is only lower), so a commit-only change is written at most every
        commit_write_interval_s: the hard state file costs two fsyncs, more than an append."""
        durable = self._durable_hard_state
        return (
            hard_state.term != durable.term
            or hard_state.vote != durable.vote
            or (
                hard_state.commit_index != durable.commit_index
                and time.monotonic() - self._durable_at_s >= self.commit_write_interval_s
            )
        )

    def note_hard_state(self, hard_state: HardState) -> None:
        """Remember a hard state that hard_state_needs_write() said may wait (no I/O)."""
        # Only term and vote may never wait. Do not re-ask hard_state_needs_write(): its
        # answer for a commit-only change turns true with the clock, between the caller's
        # check and this one.
        durable = self._durable_hard_state
        assert (hard_state.term, hard_state.vote) == (durable.term, durable.vote), hard_state
        self._hard_state = hard_state

    def _write_hard_state(self) -> None:
        self._hard_state_file.save(self._hard_state)
        self._durable_hard_state = self._hard_state
        self._durable_at_s = time.monotonic()

    def _reset(self, snapshot: SnapshotMeta) -> None:
        # The configuration goes to disk first: a crash before the reset leaves an extra
        # history item above the base, which lookups at the old base ignore.
        self._save_configs([*self._configs, (snapshot.index, snapshot.configuration)])
        self._log.reset(snapshot.index, snapshot.term, snapshot.next_offset)
        self._recent.clear()
        self._note_base()
        self._last_index = self._log.last_index
        assert self._base_index == snapshot.index, (self._log.base, snapshot)
        self._save_configs([(snapshot.index, snapshot.configuration)])

    def _append(self, entries: Sequence[Entry]) -> None:
        first = entries[0].index
        assert first > self._base_index, f"append at {first} rewrites the snapshot"
        if first <= self._last_index:
            assert first > self._hard_state.commit_index, "truncating committed entries"
            self._log.truncate_suffix(first)
            for index in range(first, self._last_index + 1):
                self._recent.pop(index, None)
        batch = self.frames.take_batch(entries)
        self._log.append(batch if batch is not None else entries)
        self._last_index = entries[-1].index
        self._recent.update(zip(range(first, self._last_index + 1), entries, strict=True))
        # Insertion order is index order (a truncation removes the newest keys), so the
        # oldest entries are the first keys. Trimmed in bulk, a quarter of the bound at a
        # time (one dict copy in C instead of a `del` per entry appended); the loop reads
        # the old dict or the new one, never a half-trimmed one.
        excess = len(self._recent) - RECENT_ENTRIES_MAX
        if excess >= RECENT_ENTRIES_MAX // 4:
            self._recent = dict(itertools.islice(self._recent.items(), excess, None))

    def apply_retention(self, upto_index: int, now_ms: int) -> bool:
        """Drop whole segments below `upto_index` (committed and applied) that retention
        limits allow; the membership in force at the new base is kept in configs.json.
        True if anything was dropped."""
        with self._lock:
            candidates = [
                (i, Configuration.decode(self._log.entry(i).payload))
                for i in self._log.config_indices()
                if i <= upto_index
            ]
            if candidates:  # before the drop: a crash after it must still find them
                self._save_configs([*self._configs, *candidates])
            removed = self._log.apply_retention(upto_index, now_ms)
            if not removed:
                return False
            self._note_base()
            for index in [i for i in self._recent if i <= self._base_index]:
                del self._recent[index]
            self._save_configs(_prune(self._configs, self._base_index))
            return True

    def close(self) -> None:
        """Write the newest hard state (so a restart knows the commit index) and close."""
        with self._lock:
            if self._hard_state != self._durable_hard_state and self._log.failure is None:
                self._write_hard_state()
            self._log.close()

    # ---- reads by record offset (reader threads) -------------------------------------------

    def read_records(self, offset: int, max_records: int, max_index: int) -> list[Entry]:
        """Up to max_records DATA entries from `offset`, none above Raft index `max_index`.
        Raises the engine's OffsetOutOfRange / OffsetTruncated."""
        with self._lock:
            return self._log.read_from_offset(offset, max_records, max_index)

    def read_record_block(self, offset: int, max_records: int, max_index: int) -> RecordBlock:
        """read_records as columns (the consumers' path: no Entry per record)."""
        with self._lock:
            return self._log.read_records(offset, max_records, max_index)

    def first_offset(self) -> int:
        """The first retained record offset: the base's next offset (no lock needed)."""
        return self._base_next_offset

    def next_offset_after(self, index: int) -> int:
        """The offset of the first DATA entry after Raft index `index` (in the log)."""
        if index <= self._base_index:
            return self._base_next_offset
        cached = self._recent.get(index)
        if cached is not None:
            return cached.next_offset
        with self._lock:
            return self._log.entry(index).next_offset

    # ---- the configuration history -----------------------------------------------------------

    def _config_at_base(self) -> Configuration:
        found = self._configs[0][1]
        for index, configuration in self._configs:
            if index <= self._base_index:
                found = configuration
        return found

    def _save_configs(self, configs: list[tuple[int, Configuration]]) -> None:
        configs = sorted(dict(configs).items())
        write_json(self._configs_path, _encode_configs(configs))
        self._configs = configs


def _prune(
    configs: list[tuple[int, Configuration]], base_index: int
) -> list[tuple[int, Configuration]]:
    """Keep the last configuration at or below the base, and everything after it."""
    keep_from = max((k for k, (i, _) in enumerate(configs) if i <= base_index), default=0)
    return configs[keep_from:]


def _encode_configs(configs: list[tuple[int, Configuration]]) -> dict[str, object]:
    return {
        "configs": [
            {"index": i, "voters": sorted(c.voters), "learners": sorted(c.learners)}
            for i, c in configs
        ]
    }


def _load_configs(path: Path) -> list[tuple[int, Configuration]] | None:
    raw = read_json(path)
    if raw is None:
        return None
    try:
        configs = [
            (int(c["index"]), Configuration(frozenset(c["voters"]), frozenset(c["learners"])))
            for c in raw["configs"]
        ]
    except (KeyError, TypeError, ValueError) as e:
        raise NodeStateError(f"{path} is malformed ({e!r}): restore or wipe the data dir") from e
    if not configs:
        raise NodeStateError(f"{path} lists no configuration: restore or wipe the data dir")
    return configs
