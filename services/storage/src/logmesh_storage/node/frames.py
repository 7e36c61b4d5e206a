"""Encoded frames of entries on their way into the log, so each entry is encoded once (DESIGN §9).

A leader encodes an entry's frame to ship it (transport.py); a follower receives the frame and
decodes it (codec.py). Both remember the frame here, and the storage adapter writes those exact
bytes instead of encoding the entries again (`take_batch`). Keys are id(entry), and the entry
itself is kept beside its frame, so an id cannot be reused by another entry while cached.
Bounded: a frame whose entry is never saved (a retransmission, a duplicate the core ignored) must
not pin memory, so the cache empties itself when full; a miss only costs an encode.

Threads: `put` runs on the event loop, `take_batch` in the writer thread or on the loop; each
dict operation is atomic, and a batch with any miss falls back to encoding. No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..log.batch import EncodedBatch
from ..log.entry import Entry

FRAMES_MAX = 16384


class FrameCache:
    def __init__(self, frames_max: int = FRAMES_MAX) -> None:
        self._frames: dict[int, tuple[Entry, bytes]] = {}
        self._frames_max = frames_max

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, entry: Entry, frame: bytes) -> None:
        """Remember `frame`, which must be encode_entry(entry) (or a received, CRC-checked
        frame that decoded to `entry`)."""
        if len(self._frames) >= self._frames_max:
            self._frames.clear()
        self._frames[id(entry)] = (entry, frame)

    def take_batch(self, entries: Sequence[Entry]) -> EncodedBatch | None:
        """The batch of `entries` (non-empty, contiguous, as a Ready holds them) from their
        remembered frames, which it forgets; None if any is missing (encode them instead)."""
        frames: list[bytes] = []
        pop = self._frames.pop
        for entry in entries:
            found = pop(id(entry), None)
            if found is None or found[0] is not entry:
                return None
            frames.append(found[1])
        return EncodedBatch(
            b"".join(frames),
            entries[0].index,
            [len(f) for f in frames],
            [e.term for e in entries],
            [e.offset for e in entries],
            [e.timestamp_ms for e in entries],
            [e.type for e in entries],
        )
