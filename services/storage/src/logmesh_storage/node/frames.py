"""Encoded batches of entries on their way into the log, so each entry is encoded once (DESIGN §9).

A leader encodes the entries of an AppendEntries as one batch to ship it (codec.py, for all
the followers it goes to); a follower receives that batch's bytes and decodes them (codec.py).
Both remember the batch here, with the entry objects it holds, and the storage adapter writes
those exact bytes instead of encoding the entries again (`take_batch`): per batch, not per
entry, as a batch of records is many entries. Keys are id(first entry), and the entries are
kept beside their batch, so an id cannot be reused by another entry while cached.
Bounded: a batch that is never saved (a retransmission, a duplicate the core ignored) must not
pin memory, so the cache empties itself when it holds too many bytes; a miss only costs an
encode.

Threads: `put_batch` runs on the event loop, `take_batch` in the writer thread or on the loop;
each dict operation is atomic, and a batch with any miss falls back to encoding. No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import is_

from ..log.batch import EncodedBatch
from ..log.entry import Entry

# What the cache may hold before it empties itself: far more than the batches in flight.
HELD_BYTES_MAX = 16 << 20


class FrameCache:
    def __init__(self, held_bytes_max: int = HELD_BYTES_MAX) -> None:
        self._batches: dict[int, tuple[Sequence[Entry], EncodedBatch]] = {}
        self._held_bytes_max = held_bytes_max
        self._held_bytes = 0  # approximate (two threads): it only bounds memory

    def __len__(self) -> int:
        """How many batches it holds."""
        return len(self._batches)

    def put_batch(self, entries: Sequence[Entry], batch: EncodedBatch) -> None:
        """Remember `batch`, which must be encode_batch(entries) (or received, CRC-checked
        frames that decoded to `entries`)."""
        assert len(entries) == len(batch) and entries[0].index == batch.first_index, batch
        if self._held_bytes + len(batch.data) > self._held_bytes_max:
            self._batches.clear()
            self._held_bytes = 0
        self._batches[id(entries[0])] = (entries, batch)
        self._held_bytes += len(batch.data)

    def take_batch(self, entries: Sequence[Entry]) -> EncodedBatch | None:
        """The batch of `entries` (non-empty, contiguous, as a Ready holds them) from the
        remembered batches that make it up, end to end, which it forgets; None if any part
        is missing (encode them instead)."""
        parts: list[EncodedBatch] = []
        at = 0
        while at < len(entries):
            found = self._batches.pop(id(entries[at]), None)
            if found is None:
                return None
            held, batch = found
            self._held_bytes -= len(batch.data)
            end = at + len(held)
            # `is`, in C: a cached batch of other entry objects (a replaced suffix) is a miss.
            if end > len(entries) or not all(map(is_, held, entries[at:end])):
                return None
            parts.append(batch)
            at = end
        return parts[0] if len(parts) == 1 else _joined(parts)


def _joined(parts: list[EncodedBatch]) -> EncodedBatch:
    def column(name: str) -> list[int]:
        return list(chain.from_iterable(getattr(p, name) for p in parts))

    return EncodedBatch(
        b"".join(p.data for p in parts),
        parts[0].first_index,
        column("frame_sizes"),
        column("terms"),
        column("offsets"),
        column("timestamps"),
        column("types"),
        column("counts"),
    )
