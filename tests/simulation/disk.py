"""One node's simulated disk: a durable storage plus at most one pending write.

A write (the persistent part of one Ready) becomes durable only when it completes,
some ticks after it began. What a crash before then leaves depends on the disk:
`SimDisk` (over MemoryStorage) loses the pending write whole and keeps the durable
copy; `EngineDisk` (engine_disk.py, over the real log engine) cuts the write part-way
and lets the engine's recovery find what survived. It may not decide when writes
complete (the caller owns time) and does not send or apply anything: it only says
what is durable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

from logmesh_storage.raft.memory import MemoryStorage
from logmesh_storage.raft.ready import Ready
from logmesh_storage.raft.storage import WritableRaftStorage


class SimStorage(WritableRaftStorage, Protocol):
    """What the simulator needs of a node's storage: the Raft seam plus retention."""

    def compact(self, index: int) -> None:
        """Drop a committed prefix up to at most `index` (retention)."""
        ...


@dataclass(frozen=True)
class PendingWrite:
    ready: Ready
    complete_tick: int


def needs_persist(ready: Ready) -> bool:
    return bool(ready.entries) or ready.hard_state is not None or ready.snapshot is not None


class Disk(ABC):
    """The pending-write bookkeeping both disks share; `crash` is each disk's own."""

    def __init__(self, storage: SimStorage) -> None:
        self.storage = storage  # the durable state: what the node reads after a restart
        self.pending: PendingWrite | None = None
        self.writes_completed = 0
        self.writes_lost = 0

    def begin(self, ready: Ready, complete_tick: int) -> None:
        # one Ready is outstanding at a time (ready.py), so one write at a time
        assert self.pending is None, "a second write began before the first completed"
        self.pending = PendingWrite(ready, complete_tick)

    def is_due(self, now_tick: int) -> bool:
        return self.pending is not None and self.pending.complete_tick <= now_tick

    def complete(self) -> Ready:
        """Make the pending write durable and return its Ready."""
        assert self.pending is not None, "no write to complete"
        ready = self.pending.ready
        self.pending = None
        self.storage.save(ready.hard_state, ready.entries, ready.snapshot)
        self.writes_completed += 1
        return ready

    @abstractmethod
    def crash(self, compacting_to: int | None = None) -> Ready | None:
        """Stop: the pending write (or, if `compacting_to` is given, a compaction up to
        that index, begun just now) is interrupted, and `storage` becomes what a restart
        finds. Returns the interrupted write if part of it may have reached the disk."""


class SimDisk(Disk):
    """Over MemoryStorage: a crash loses the pending write whole."""

    def __init__(self, storage: MemoryStorage) -> None:
        super().__init__(storage)
        self._durable = storage

    def crash(self, compacting_to: int | None = None) -> Ready | None:
        """Lose the pending write (and the compaction: it never began). The restarted
        node gets a fresh copy of the durable state, so nothing the dead node object
        still holds can reach it."""
        if self.pending is not None:
            self.writes_lost += 1
        self.pending = None
        self._durable = self._durable.copy()
        self.storage = self._durable
        return None
