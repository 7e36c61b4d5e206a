"""What a crash may and may not take from a node's disk.

Before a crash the cluster notes the node's durable state (`durable_state`); after
recovery, `check_crash_kept` compares. With no write in flight nothing may change: a
crash loses only unsynced bytes, and between writes everything that counts is synced.
A compaction cut by the crash may have moved the base to any index it was allowed to
reach, carrying that index's term, offset and configuration. A write cut by the crash
may have landed in part, but nothing below the first index it touches nor the base may
move; one that installs a snapshot leaves the old log or the new one, never a mix.
In memory mode this holds by construction; in engine mode it is the log engine's
durability and recovery under test. Pure comparison: it changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from logmesh_storage.log.entry import EntryType
from logmesh_storage.raft.ready import Ready
from logmesh_storage.raft.storage import RaftStorage
from logmesh_storage.raft.types import Configuration, HardState, NodeId, SnapshotMeta

from .errors import InvariantViolationError

PROPERTY = "a crash keeps what was synced"
_ALL_BYTES = 1 << 62


@dataclass(frozen=True)
class DurableState:
    hard_state: HardState
    snapshot: SnapshotMeta
    last_index: int
    last_term: int
    kept_index: int  # the last index the write in flight cannot touch
    kept_term: int
    bases: Mapping[int, SnapshotMeta]  # the bases a compaction in flight may leave

    def __str__(self) -> str:
        hs, base = self.hard_state, self.snapshot
        return (
            f"term {hs.term} vote {hs.vote} commit {hs.commit_index}, base "
            f"{base.index}/{base.term}, last {self.last_index}/{self.last_term}"
        )


def durable_state(
    storage: RaftStorage, pending: Ready | None, compacting_to: int | None = None
) -> DurableState:
    """`storage`'s durable state, while `pending` (if any) is being written or the
    prefix up to `compacting_to` (if given) dropped."""
    snapshot, last_index = storage.snapshot(), storage.last_index()
    kept_index = last_index
    if pending is not None and pending.entries:
        kept_index = max(min(kept_index, pending.entries[0].index - 1), snapshot.index)
    return DurableState(
        storage.initial_state()[0],
        snapshot,
        last_index,
        storage.term(last_index),
        kept_index,
        storage.term(kept_index),
        _bases(storage, compacting_to) if compacting_to else {snapshot.index: snapshot},
    )


def _bases(storage: RaftStorage, compacting_to: int) -> dict[int, SnapshotMeta]:
    """The SnapshotMeta of every index a compaction up to `compacting_to` may leave as
    the base: its term, offset and the configuration in force there."""
    snapshot = storage.snapshot()
    bases = {snapshot.index: snapshot}
    configuration = snapshot.configuration
    for entry in storage.entries(snapshot.index + 1, compacting_to + 1, _ALL_BYTES):
        if entry.type is EntryType.CONFIG:
            configuration = Configuration.decode(entry.payload)
        bases[entry.index] = SnapshotMeta(entry.index, entry.term, configuration, entry.next_offset)
    return bases


def check_crash_kept(
    node_id: NodeId, before: DurableState, interrupted: Ready | None, storage: RaftStorage
) -> None:
    """Raise InvariantViolationError if recovery lost or changed what was synced."""
    after = durable_state(storage, None)
    if interrupted is None:
        kept = (after.hard_state, after.last_index, after.last_term) == (
            before.hard_state,
            before.last_index,
            before.last_term,
        ) and before.bases.get(after.snapshot.index) == after.snapshot
        doing = "idle" if len(before.bases) == 1 else "compacting"
        if after.snapshot != before.bases.get(after.snapshot.index, after.snapshot):
            doing += f" (base {after.snapshot} should be {before.bases[after.snapshot.index]})"
    elif interrupted.snapshot is not None:
        kept = _same_log(before, after) or (
            after.snapshot == interrupted.snapshot
            and after.last_index >= interrupted.snapshot.index
        )
        doing = f"installing a snapshot at {interrupted.snapshot.index}"
    else:
        kept = (
            after.snapshot == before.snapshot
            and after.last_index >= before.kept_index
            and storage.term(before.kept_index) == before.kept_term
        )
        doing = f"writing entries after {before.kept_index}/{before.kept_term}"
    if not kept:
        raise InvariantViolationError(
            PROPERTY, f"{node_id} had ({before}) durable, crashed {doing}, recovered ({after})"
        )


def _same_log(before: DurableState, after: DurableState) -> bool:
    return (after.snapshot, after.last_index, after.last_term) == (
        before.snapshot,
        before.last_index,
        before.last_term,
    )
