"""Per-follower replication progress, kept by the leader (etcd's tracker.Progress).

A Progress decides *whether* the leader may send to a follower now (flow control)
and *where* to start; it sends nothing itself. States:
  PROBE: we do not know where the follower's log matches ours; one AppendEntries
    at a time, next_index steps back on each rejection (fast, with the hint).
  REPLICATE: matched; AppendEntries are pipelined, next_index moves ahead
    optimistically, at most `max_inflight_messages` unacknowledged at once.
  SNAPSHOT: the follower needs entries we compacted; an InstallSnapshot is out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum


class ProgressState(Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True, slots=True)
class ProgressView:
    """A read-only copy of one follower's progress, for Status."""

    match_index: int
    next_index: int
    state: ProgressState


@dataclass(slots=True)
class Inflights:
    """The last index of each AppendEntries sent and not yet acknowledged, oldest first."""

    capacity: int
    last_indexes: deque[int] = field(default_factory=deque)

    def full(self) -> bool:
        return len(self.last_indexes) >= self.capacity

    def add(self, last_index: int) -> None:
        assert not self.full(), "inflight window overflow"
        assert not self.last_indexes or last_index > self.last_indexes[-1], "inflights out of order"
        self.last_indexes.append(last_index)

    def free_to(self, index: int) -> None:
        """The follower acknowledged everything up to `index`."""
        while self.last_indexes and self.last_indexes[0] <= index:
            self.last_indexes.popleft()

    def free_first(self) -> None:
        # Used on a heartbeat response: a lost message must not block the window forever.
        if self.last_indexes:
            self.last_indexes.popleft()

    def reset(self) -> None:
        self.last_indexes.clear()


@dataclass(slots=True)
class Progress:
    match_index: int
    next_index: int
    inflights: Inflights
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False  # PROBE: one message is out, wait for its answer
    pending_snapshot_index: int = 0  # SNAPSHOT: the index of the snapshot sent
    recent_active: bool = True  # heard from since the last check-quorum round
    commit_sent: int = 0  # the highest commit index sent to this follower
    append_sent: bool = False  # an AppendEntries went out since the last heartbeat round

    @classmethod
    def new(cls, next_index: int, max_inflight_messages: int) -> Progress:
        return cls(0, next_index, Inflights(max_inflight_messages))

    def view(self) -> ProgressView:
        return ProgressView(self.match_index, self.next_index, self.state)

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def become_probe(self) -> None:
        # After a snapshot, resume right after it: the follower has everything up to it.
        if self.state is ProgressState.SNAPSHOT:
            self.next_index = max(self.match_index + 1, self.pending_snapshot_index + 1)
        else:
            self.next_index = self.match_index + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next_index = self.match_index + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot_index = snapshot_index

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot_index = 0
        self.inflights.reset()

    def sent_entries(self, last_index: int | None) -> None:
        """An AppendEntries left, carrying entries up to `last_index` (None: no entries)."""
        if self.state is ProgressState.REPLICATE:
            if last_index is not None:
                self.next_index = last_index + 1
                self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True
        else:
            raise AssertionError("no AppendEntries is sent while a snapshot is out")

    def maybe_update(self, index: int) -> bool:
        """An acceptance up to `index` arrived; False if it told us nothing new."""
        updated = index > self.match_index
        if updated:
            self.match_index = index
            self.probe_sent = False
        self.next_index = max(self.next_index, index + 1)
        return updated

    def maybe_decrease_to(self, rejected_index: int, match_hint_index: int) -> bool:
        """A rejection of an AppendEntries whose prev_index was `rejected_index`; the
        follower's log may match up to `match_hint_index`. False if the rejection is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected_index <= self.match_index:
                return False
            self.next_index = self.match_index + 1
            return True
        if self.next_index - 1 != rejected_index:
            return False
        self.next_index = max(min(rejected_index, match_hint_index + 1), self.match_index + 1)
        self.probe_sent = False
        return True
