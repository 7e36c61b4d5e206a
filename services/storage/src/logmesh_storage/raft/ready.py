"""Ready: the core's one output value, and the obligations it puts on the driver."""

from __future__ import annotations

from dataclasses import dataclass

from ..log.entry import Entry
from .messages import Message
from .types import HardState, ReadState, SnapshotMeta, SoftState


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the driver must do, in this order, then hand back with advance(ready).

    1. `messages`: may be sent at once, even before step 2 completes.
    2. Persist: if `snapshot` is set, reset the log to it (SnapshotMeta), then
       append `entries` (if entries[0].index <= the stored last index, first
       truncate the stored log from entries[0].index), then write `hard_state`
       if not None, atomically. fsync all of it.
    3. Only after step 2 is durable: send `messages_after_persist`.
    4. Apply `committed_entries` in order (they may include entries of step 2),
       and answer `read_states` once applied.
    5. Call advance(ready).
    Only one Ready is outstanding at a time: ready() is not called again before
    advance() (the core asserts it). tick/step/propose may be called while the Ready
    is being handled.

    `soft_state` is always set; a change of it alone makes has_ready() true.
    `hard_state` is None when unchanged since the last Ready. `committed_entries`
    holds at most max_bytes_per_message of payload (at least one entry); the rest
    comes in later Readies. The leader counts its own copy of `entries` toward
    commit only in advance(). See docs/raft.md for which message goes where.
    """

    soft_state: SoftState
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: SnapshotMeta | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    messages_after_persist: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()

    def is_empty(self) -> bool:
        return not (
            self.hard_state
            or self.entries
            or self.snapshot
            or self.committed_entries
            or self.messages
            or self.messages_after_persist
            or self.read_states
        )
