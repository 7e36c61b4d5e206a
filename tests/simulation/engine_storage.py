"""EngineStorage: the simulator's WritableRaftStorage over the real log engine.

The Raft log is a real `Log` (segments, frames, CRCs, recovery) on a `FileSystem`,
in the simulator a `MemoryFileSystem` that a crash hits as a power cut would. Beside
the log, in `<root>/raft/`, two small files written crash-safely (state_files.py):
the hard state, and the configuration history (the membership in force at the log's
base, which the engine's base (index, term, next_offset) does not carry). Every call
is synchronous and durable on return, so the simulator's disk (engine_disk.py) decides
when a Ready's write happens and where a crash cuts it.

It mirrors the node's adapter (node/raft_storage.py) without its threads, caches or
lazy commit writes, so that every read goes to the engine. It may not read clocks,
sleep, or hold state that a crash could not lose: reopening after a crash is
`EngineStorage.open` on the crashed file system, and recovery runs for real.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from logmesh_storage.log.config import LogConfig
from logmesh_storage.log.entry import Entry
from logmesh_storage.log.fs import FileSystem
from logmesh_storage.log.log import Log
from logmesh_storage.raft.errors import IndexUnavailable, LogCompacted
from logmesh_storage.raft.types import Configuration, HardState, NodeId, SnapshotMeta

from .errors import StateFileDamagedError
from .state_files import (
    ConfigHistory,
    decode_configs,
    decode_hard_state,
    encode_configs,
    encode_hard_state,
    read_file,
    write_atomic,
)

LOG_DIR = "log"
RAFT_DIR = "raft"
HARD_STATE_FILE = "hardstate.json"
CONFIGS_FILE = "configs.json"


@dataclass
class EngineStats:
    """What the engine went through during a run: evidence that engine mode exercises
    recovery and the log's structural operations, not only appends."""

    recoveries: int = 0  # Log.open after a crash
    recovery_crashes: int = 0  # crashes in the middle of a recovery's repairs
    torn_saves: int = 0  # crashes that cut a Ready's write part-way
    torn_compactions: int = 0  # crashes that cut a compaction part-way
    torn_tails_cut: int = 0  # recoveries that cut the last segment's torn tail
    tail_bytes_cut: int = 0
    leftovers_removed: int = 0  # temp files, orphan caches, older generations
    segments_rolled: int = 0
    segments_dropped: int = 0  # by compaction (drop_prefix)
    resets: int = 0  # snapshot installs
    suffix_truncations: int = 0  # Raft conflicts

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def add(self, other: EngineStats) -> None:
        for name, value in other.as_dict().items():
            setattr(self, name, getattr(self, name) + value)


class EngineStorage:
    """Implements WritableRaftStorage (and the simulator's `compact`) over a Log."""

    def __init__(
        self,
        fs: FileSystem,
        root: str,
        log: Log,
        hard_state: HardState,
        configs: ConfigHistory,
        stats: EngineStats,
    ) -> None:
        self._fs = fs
        self._raft_dir = f"{root}/{RAFT_DIR}"
        self.log = log
        self._hard_state = hard_state  # durable: save writes it before returning
        # (index, configuration in force from it), oldest first; the first item is at or
        # below the log's base. Later configurations are the log's CONFIG entries.
        self._configs = configs
        self.stats = stats

    @classmethod
    def open(
        cls,
        fs: FileSystem,
        root: str,
        log_config: LogConfig,
        stats: EngineStats,
        bootstrap_voters: Sequence[NodeId] = (),
    ) -> EngineStorage:
        """Open (recovering) or create the storage under `root`. `bootstrap_voters`:
        the configuration of a brand-new node (empty for a spare); ignored afterwards."""
        raft_dir = f"{root}/{RAFT_DIR}"
        fs.make_dirs(raft_dir)
        log = Log.open(fs, f"{root}/{LOG_DIR}", log_config)
        hard_state_path = f"{raft_dir}/{HARD_STATE_FILE}"
        raw_hard_state = read_file(fs, hard_state_path)
        hard_state = (
            HardState()
            if raw_hard_state is None
            else decode_hard_state(hard_state_path, raw_hard_state)
        )
        configs_path = f"{raft_dir}/{CONFIGS_FILE}"
        raw_configs = read_file(fs, configs_path)
        if raw_configs is not None:
            configs = decode_configs(configs_path, raw_configs)
        elif log.last_index == 0 and log.base.index == 0:
            configs = [(0, Configuration(voters=frozenset(bootstrap_voters)))]
            write_atomic(fs, raft_dir, CONFIGS_FILE, encode_configs(configs))
        else:
            raise StateFileDamagedError(configs_path, "missing, but the log holds entries")
        return cls(fs, root, log, hard_state, configs, stats)

    # RaftStorage

    def initial_state(self) -> tuple[HardState, Configuration]:
        # Everything up to the base is committed (only committed entries are dropped),
        # but a crash can fall between a reset and the hard state write that follows.
        hs = self._hard_state
        hard_state = HardState(hs.term, hs.vote, max(hs.commit_index, self.log.base.index))
        indices = self.log.config_indices()
        if indices:
            return hard_state, Configuration.decode(self.log.entry(indices[-1]).payload)
        return hard_state, self._config_at(self.log.base.index)

    def snapshot(self) -> SnapshotMeta:
        base = self.log.base
        return SnapshotMeta(base.index, base.term, self._config_at(base.index), base.next_offset)

    def first_index(self) -> int:
        return self.log.first_index

    def last_index(self) -> int:
        return self.log.last_index

    def term(self, index: int) -> int:
        if index < self.log.first_index - 1:
            raise LogCompacted(index, self.log.first_index)
        if index > self.log.last_index:
            raise IndexUnavailable(index, self.log.last_index)
        return self.log.term_at(index)

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        if lo < self.log.first_index:
            raise LogCompacted(lo, self.log.first_index)
        if hi > self.log.last_index + 1:
            raise IndexUnavailable(hi - 1, self.log.last_index)
        return self.log.entries(lo, hi, max_bytes)

    # WritableRaftStorage

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None,
    ) -> None:
        """Ready's order: reset to the snapshot, truncate a conflicting suffix, append,
        then the hard state. Each step is durable before the next begins, so a crash
        part-way leaves a prefix of the steps (engine_disk.py cuts saves there)."""
        if snapshot is not None:
            self._reset(snapshot)
        if entries:
            self._append(entries)
        if hard_state is not None and hard_state != self._hard_state:
            assert hard_state.term >= self._hard_state.term, "term went back"
            assert hard_state.commit_index >= self._hard_state.commit_index, "commit went back"
            write_atomic(self._fs, self._raft_dir, HARD_STATE_FILE, encode_hard_state(hard_state))
            self._hard_state = hard_state

    def _reset(self, snapshot: SnapshotMeta) -> None:
        base = self.log.base
        assert snapshot.index >= base.index, "snapshot went back"
        # The snapshot's configuration is on disk before the log restarts at its index:
        # a crash in between leaves an extra (committed, so true) item above the base.
        self._write_configs(
            [(base.index, self._config_at(base.index)), (snapshot.index, snapshot.configuration)]
        )
        self.log.reset(snapshot.index, snapshot.term, snapshot.next_offset)
        self._write_configs([(snapshot.index, snapshot.configuration)])
        self.stats.resets += 1

    def _append(self, entries: Sequence[Entry]) -> None:
        first, last = entries[0].index, self.log.last_index
        assert self.log.first_index <= first <= last + 1, (
            f"append at {first} leaves a gap or rewrites the snapshot "
            f"(log is [{self.log.first_index}, {last}])"
        )
        if first <= last:
            assert first > self._hard_state.commit_index, "cannot truncate committed entries"
            self.log.truncate_suffix(first)
            self.stats.suffix_truncations += 1
        segments_before = len(self.log.segment_paths)
        self.log.append(entries)
        self.stats.segments_rolled += len(self.log.segment_paths) - segments_before

    # Compaction (retention): the simulator's workload calls it; the core never does.

    def compact(self, index: int) -> None:
        """Drop the whole segments whose entries are all at or below `index` (which
        must be committed): the engine compacts by segment, so the new base may stay
        below `index`. The configuration history reaches the new base first."""
        base = self.log.base
        if index <= base.index:
            return
        assert index <= self._hard_state.commit_index, "cannot compact uncommitted entries"
        assert index <= self.log.last_index, "cannot compact past the last index"
        history = [(base.index, self._config_at(base.index))] + [
            (i, Configuration.decode(self.log.entry(i).payload))
            for i in self.log.config_indices()
            if i <= index
        ]
        if len(history) > 1:  # before the drop: a crash after it must still find them
            self._write_configs(history)
        segments_before = len(self.log.segment_paths)
        self.log.drop_prefix(index + 1)
        dropped = segments_before - len(self.log.segment_paths)
        if dropped:
            self.stats.segments_dropped += dropped
            new_base = self.log.base.index
            self._write_configs([(new_base, self._config_at(new_base))])

    # the configuration history

    def _config_at(self, index: int) -> Configuration:
        found = self._configs[0][1]
        for at, configuration in self._configs:
            if at <= index:
                found = configuration
        return found

    def _write_configs(self, configs: ConfigHistory) -> None:
        configs = sorted(dict(configs).items())
        if configs == self._configs:
            return
        write_atomic(self._fs, self._raft_dir, CONFIGS_FILE, encode_configs(configs))
        self._configs = configs
