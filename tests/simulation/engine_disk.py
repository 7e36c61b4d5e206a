"""EngineDisk: a simulated node's disk that is the real log engine on a MemoryFileSystem.

A write runs `EngineStorage.save` when it completes, so it counts as durable only once
every fsync in it has returned. A crash while a write is pending (or one forced into a
compaction: `drop_prefix` and its configuration file) cuts that work at a random sync:
the first `k` syncs succeed, the next one fails and the power goes. Then
`MemoryFileSystem.crash` keeps synced bytes and a random prefix of every unsynced tail
(its last bytes perhaps garbled) and keeps or loses each unsynced directory change.
Cutting at a sync point loses no generality: whatever happened after sync k and before
sync k+1 is unsynced, and the crash keeps any prefix of it. The restarted node then
sees what `Log.open`'s recovery makes of the wreck; half the time the power fails again
during that recovery, and the next one must finish the job.

It owns its crash randomness (an rng seeded from the run's seed), and may not decide when
writes complete or crashes happen: the simulator does.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable, Sequence

from logmesh_storage.log.config import LogConfig
from logmesh_storage.log.errors import FsyncFailed
from logmesh_storage.log.fs import MemoryFileSystem
from logmesh_storage.raft.ready import Ready
from logmesh_storage.raft.types import NodeId

from .disk import Disk
from .engine_storage import LOG_DIR, EngineStats, EngineStorage

ROOT_DIR = "/data"
# A save takes 1 sync (an append) to about 10 (a reset with a roll and both state
# files); cutting after 0..5 reaches every step of the common saves and sometimes
# lets a whole save finish unacknowledged.
SAVE_SYNCS_SURVIVED_MAX = 5
# Recovery syncs only when it repairs something (a cut tail, removed leftovers), so a
# crash during it must come early to land inside the repair.
RECOVERY_CRASH_PROBABILITY = 0.5
RECOVERY_SYNCS_SURVIVED_MAX = 1


class EngineDisk(Disk):
    """One node's disk: its own MemoryFileSystem holding the log and the state files."""

    def __init__(
        self,
        log_config: LogConfig,
        rng: random.Random,
        bootstrap_voters: Sequence[NodeId] = (),
    ) -> None:
        self.fs = MemoryFileSystem()
        self.log_config = log_config
        self.stats = EngineStats()
        self._rng = rng
        super().__init__(
            EngineStorage.open(self.fs, ROOT_DIR, log_config, self.stats, bootstrap_voters)
        )

    def crash(self, compacting_to: int | None = None) -> Ready | None:
        """Cut the pending write (or the compaction) part-way, lose what the power cut
        loses, recover. A write pending during a compaction had not begun: it is lost."""
        interrupted = self.pending.ready if self.pending is not None else None
        self.pending = None
        if interrupted is not None:
            self.writes_lost += 1
        if compacting_to is not None:
            interrupted = None
            if self._until_crash_point(lambda: self.storage.compact(compacting_to)):
                self.stats.torn_compactions += 1
        elif interrupted is not None:
            ready = interrupted
            if self._until_crash_point(
                lambda: self.storage.save(ready.hard_state, ready.entries, ready.snapshot)
            ):
                self.stats.torn_saves += 1
        self.fs.crash(self._rng)
        self._recover()
        return interrupted

    def _until_crash_point(self, work: Callable[[], object]) -> bool:
        """Run `work` until the power fails at a random sync; False if it finished."""
        self.fs.syncs_until_failure = self._rng.randint(0, SAVE_SYNCS_SURVIVED_MAX)
        try:
            work()
        except (FsyncFailed, OSError) as error:
            if not _is_crash_point(error):
                raise
            return True
        finally:
            self.fs.syncs_until_failure = None
        return False

    def _recover(self) -> None:
        log_dir = f"{ROOT_DIR}/{LOG_DIR}"
        sizes_before = {
            name: len(self.fs.read_bytes(f"{log_dir}/{name}")) for name in self.fs.list_dir(log_dir)
        }
        if self._rng.random() < RECOVERY_CRASH_PROBABILITY:
            self._open_until_crash_point()
        storage = EngineStorage.open(self.fs, ROOT_DIR, self.log_config, self.stats)
        self.stats.recoveries += 1
        self.stats.leftovers_removed += len(set(sizes_before) - set(self.fs.list_dir(log_dir)))
        last_path = storage.log.segment_paths[-1]
        cut_bytes = sizes_before.get(last_path.rpartition("/")[2], 0) - len(
            self.fs.read_bytes(last_path)
        )
        if cut_bytes > 0:
            self.stats.torn_tails_cut += 1
            self.stats.tail_bytes_cut += cut_bytes
        self.storage = storage

    def _open_until_crash_point(self) -> None:
        """Power fails again while recovery runs (cutting tails, removing leftovers):
        recovery must be restartable from wherever it stopped."""
        self.fs.syncs_until_failure = self._rng.randint(0, RECOVERY_SYNCS_SURVIVED_MAX)
        try:
            EngineStorage.open(self.fs, ROOT_DIR, self.log_config, EngineStats())
        except (FsyncFailed, OSError) as error:
            if not _is_crash_point(error):
                raise
            self.stats.recovery_crashes += 1
        finally:
            self.fs.syncs_until_failure = None
        self.fs.crash(self._rng)


def _is_crash_point(error: BaseException) -> bool:
    """The simulated sync failure that stands for the power cut, and nothing else."""
    cause = error.__cause__ if isinstance(error, FsyncFailed) else error
    return isinstance(cause, OSError) and cause.errno == errno.EIO
