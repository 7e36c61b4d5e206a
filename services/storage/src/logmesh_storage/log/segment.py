"""One segment: a store file (header + frames) and its index, with recovery.

A segment is named after its base index (`00000000000000000001.seg`, cache
`...001.idx`). `create` makes the header durable before the name appears;
`load` rebuilds what a crash left (trusting the index cache only as far as the store
confirms it) and cuts a torn tail of the last segment. This module does not decide
which segments exist or in what order: that is log.py.
"""

from __future__ import annotations

import bisect
import contextlib
from array import array
from collections.abc import Sequence
from itertools import accumulate

from .batch import EncodedBatch
from .entry import Entry, EntryType, RecordBlock, decode_records
from .errors import CorruptLog
from .fs import File, FileSystem
from .index import SegmentIndex
from .store import (
    SEGMENT_HEADER_BYTES,
    Damage,
    FrameMeta,
    SegmentHeader,
    check_frame,
    decode_frames,
    frame_payloads,
    next_frame_position,
)

SEGMENT_SUFFIX = ".seg"
INDEX_SUFFIX = ".idx"
TMP_SUFFIX = ".tmp"
_DATA = int(EntryType.DATA)
_RECORDS = int(EntryType.RECORDS)
_HOLDS_RECORDS = frozenset((_DATA, _RECORDS))
_CONFIG = int(EntryType.CONFIG)


def segment_name(base_index: int) -> str:
    return f"{base_index:020d}{SEGMENT_SUFFIX}"


class Segment:
    """An open segment. `size` is the store length; entries live in `index`."""

    def __init__(self, fs: FileSystem, directory: str, header: SegmentHeader, store: File):
        self.fs = fs
        self.directory = directory
        self.header = header
        self.store = store
        self.size = store.size()
        self.index = SegmentIndex(header.base_index)
        self.timestamp_ms_max: int | None = None
        self.path = f"{directory}/{segment_name(header.base_index)}"
        self.index_path = self.path[: -len(SEGMENT_SUFFIX)] + INDEX_SUFFIX
        self.cut_bytes = 0  # bytes of torn tail recovery removed
        # Whether the index cache file matched the store whole (else rewrite it on seal).
        self.cache_trusted = False

    # -- naming and shape --------------------------------------------------------------

    @property
    def base_index(self) -> int:
        return self.header.base_index

    @property
    def last_index(self) -> int:
        return self.header.base_index + len(self.index) - 1

    @property
    def next_offset(self) -> int:
        if not len(self.index):
            return self.header.base_offset
        return self.index.offsets[-1] + self.index.counts[-1]

    @property
    def last_term(self) -> int:
        return self.index.terms[-1] if len(self.index) else self.header.prev_term

    # -- creation and recovery ---------------------------------------------------------

    @classmethod
    def create(cls, fs: FileSystem, directory: str, header: SegmentHeader) -> Segment:
        """A new empty segment whose header is durable before its name appears."""
        path = f"{directory}/{segment_name(header.base_index)}"
        tmp = fs.open(path + TMP_SUFFIX, create=True)
        try:
            tmp.truncate(0)
            tmp.append(header.encode())
            tmp.sync()
        finally:
            tmp.close()
        fs.rename(path + TMP_SUFFIX, path)
        fs.sync_dir(directory)
        return cls(fs, directory, header, fs.open(path, create=False))

    @classmethod
    def load(
        cls, fs: FileSystem, directory: str, header: SegmentHeader, store: File, is_last: bool
    ) -> Segment:
        """Open an existing segment: trust the index cache as far as the store
        confirms it, scan the rest, cut a torn tail if this is the last segment."""
        segment = cls(fs, directory, header, store)
        segment._load_index_cache()
        segment._scan_tail(is_last)
        segment.timestamp_ms_max = max(segment.index.timestamps, default=None)
        return segment

    def _load_index_cache(self) -> None:
        try:
            cache_file = self.fs.open(self.index_path, create=False)
        except FileNotFoundError:
            return
        try:
            data = cache_file.pread(0, cache_file.size())
        finally:
            cache_file.close()
        cached = SegmentIndex.decode(data, self.base_index)
        if cached is None or not len(cached) or cached.positions[0] != SEGMENT_HEADER_BYTES:
            return
        # A long index (frames the store no longer has): keep what the store holds.
        positions, sizes = cached.positions, cached.frame_sizes
        keep = bisect.bisect_right(
            range(len(cached)), self.size, key=lambda i: positions[i] + sizes[i]
        )
        cached.truncate(keep)
        if keep and self._store_confirms(cached, keep - 1):
            self.index = cached
            self.cache_trusted = keep == len(positions)

    def _store_confirms(self, cached: SegmentIndex, i: int) -> bool:
        position, frame_bytes = cached.positions[i], cached.frame_sizes[i]
        meta = check_frame(self.store.pread(position, frame_bytes), 0)
        return (
            isinstance(meta, FrameMeta)
            and meta.index == self.base_index + i
            and meta.term == cached.terms[i]
            and meta.offset == cached.offsets[i]
            and meta.type == cached.types[i]
            and meta.count == cached.counts[i]
        )

    def _scan_tail(self, is_last: bool) -> None:
        start = self.index.end_position or SEGMENT_HEADER_BYTES
        buf = self.store.pread(start, self.size - start)
        at = 0
        while at < len(buf):
            meta = check_frame(buf, at)
            if isinstance(meta, Damage):
                self._on_damage(buf, at, meta, start, is_last)
                return
            self._check_continues(meta, start)
            self.cache_trusted = False
            self.index.add(
                FrameMeta(
                    start + at,
                    meta.frame_bytes,
                    meta.index,
                    meta.term,
                    meta.offset,
                    meta.timestamp_ms,
                    meta.type,
                    meta.count,
                )
            )
            at += meta.frame_bytes

    def _check_continues(self, meta: FrameMeta, start: int) -> None:
        where = start + meta.position
        if meta.index != self.last_index + 1:
            raise CorruptLog(
                self.path, where, f"frame holds index {meta.index}, expected {self.last_index + 1}"
            )
        if meta.offset != self.next_offset:
            raise CorruptLog(
                self.path, where, f"frame holds offset {meta.offset}, expected {self.next_offset}"
            )
        if meta.term < self.last_term:
            raise CorruptLog(
                self.path, where, f"frame term {meta.term} is below the previous {self.last_term}"
            )

    def _on_damage(self, buf: bytes, at: int, damage: Damage, start: int, is_last: bool) -> None:
        position = start + at
        if not is_last:
            raise CorruptLog(self.path, position, f"{damage.value} in a sealed segment")
        if damage is Damage.BAD_TYPE:
            raise CorruptLog(self.path, position, damage.value)
        following = next_frame_position(buf, at)
        if following is not None and isinstance(check_frame(buf, following), FrameMeta):
            raise CorruptLog(self.path, position, f"{damage.value}, and a valid frame follows it")
        # A torn tail: the end of a batch whose write did not finish before a crash.
        self.cut_bytes = self.size - position
        self.cut_to(position)

    # -- writing ---------------------------------------------------------------------

    def append(self, batch: EncodedBatch) -> None:
        """Index a batch whose frames were just written at the end of the store."""
        index = self.index
        positions = list(accumulate(batch.frame_sizes, initial=self.size))
        self.size = positions.pop()
        index.positions.extend(positions)
        index.frame_sizes.extend(batch.frame_sizes)
        index.terms.extend(batch.terms)
        index.offsets.extend(batch.offsets)
        index.timestamps.extend(batch.timestamps)
        index.types.extend(batch.types)
        index.counts.extend(batch.counts)
        if _CONFIG in batch.types:
            index.config_indices += [
                batch.first_index + i for i, t in enumerate(batch.types) if t == _CONFIG
            ]
        newest = max(batch.timestamps)
        if self.timestamp_ms_max is None or newest > self.timestamp_ms_max:
            self.timestamp_ms_max = newest

    def cut_to(self, position: int) -> None:
        """Durably cut the store at `position`; forget the cache file first so a stale
        one can never describe frames written after the cut."""
        self.forget_index_cache()
        self.store.truncate(position)
        self.store.sync()
        self.size = position

    def truncate_entries(self, count: int) -> None:
        """Keep the first `count` entries, durably."""
        position = self.index.positions[count] if count < len(self.index) else self.size
        self.cut_to(position)
        self.index.truncate(count)
        self.timestamp_ms_max = max(self.index.timestamps, default=None)

    def forget_index_cache(self) -> None:
        try:
            self.fs.remove(self.index_path)
        except FileNotFoundError:
            return
        self.fs.sync_dir(self.directory)

    def write_index_cache(self) -> None:
        """Persist the index as a cache. Not synced, and a failure (a full disk) is
        ignored: a missing, short or damaged cache is rebuilt from the store."""
        try:
            cache = self.fs.open(self.index_path, create=True)
        except OSError:
            return
        try:
            cache.truncate(0)
            cache.append(self.index.encode())
        except OSError:
            return
        finally:
            cache.close()

    def remove(self) -> None:
        """Delete the files (the caller syncs the directory)."""
        self.store.close()
        for path in (self.index_path, self.path):
            with contextlib.suppress(FileNotFoundError):
                self.fs.remove(path)

    # -- reading ---------------------------------------------------------------------

    def read(self, lo: int, hi: int) -> list[Entry]:
        """Entries at index positions [lo, hi) of this segment, CRC-checked."""
        start = self.index.positions[lo]
        end = self.index.positions[hi - 1] + self.index.frame_sizes[hi - 1]
        decoded = decode_frames(self.store.pread(start, end - start), hi - lo)
        if isinstance(decoded, tuple):
            at, damage = decoded
            raise CorruptLog(self.path, start + at, f"{damage.value} on read")
        if (
            decoded[0].index != self.base_index + lo
            or decoded[-1].index != self.base_index + hi - 1
        ):
            raise CorruptLog(self.path, start, "the frames hold other indices than the index says")
        return decoded

    def read_records(self, lo: int, hi: int, from_offset: int, limit: int) -> RecordBlock:
        """The records of the entries at index positions [lo, hi) of this segment at
        `from_offset` or later, at most `limit`, as columns: the values read and
        CRC-checked, the rest from the index (whose offsets each frame must match)."""
        index = self.index
        start = index.positions[lo]
        end = index.positions[hi - 1] + index.frame_sizes[hi - 1]
        buf = self.store.pread(start, end - start)
        if len(buf) != end - start:
            raise CorruptLog(self.path, start + len(buf), "the file ends inside a frame on read")
        columns: tuple[Sequence[int], ...] = (
            index.positions[lo:hi],
            index.frame_sizes[lo:hi],
            index.offsets[lo:hi],
            index.terms[lo:hi],
            index.timestamps[lo:hi],
        )
        types = index.types[lo:hi]
        if types.count(_DATA) != hi - lo:  # control entries hold no record: leave them out
            keep = [k for k, t in enumerate(types) if t in _HOLDS_RECORDS]
            columns = tuple([column[k] for k in keep] for column in columns)
            types = array("B", [types[k] for k in keep])
        positions, sizes, offsets, terms, timestamps = columns
        payloads = frame_payloads(buf, start, positions, sizes, offsets)
        if isinstance(payloads, int):
            raise CorruptLog(
                self.path, payloads, "the frame checksum or offset does not match on read"
            )
        if _RECORDS in types:
            columns = (types, offsets, terms, timestamps)
            return _unpack_records(columns, payloads, from_offset, limit)
        if len(payloads) > limit:  # a DATA entry is one record from its offset on
            return RecordBlock(offsets[:limit], terms[:limit], timestamps[:limit], payloads[:limit])
        return RecordBlock(offsets, terms, timestamps, payloads)


def _unpack_records(
    columns: tuple[Sequence[int], ...], payloads: list[bytes], from_offset: int, limit: int
) -> RecordBlock:
    """One column entry per record: the records of RECORDS entries side by side with the
    DATA entries, those below from_offset left out, at most `limit`. `columns` are the
    entries' types, offsets, terms and timestamps."""
    out_offsets: list[int] = []
    out_terms: list[int] = []
    out_timestamps: list[int] = []
    out_payloads: list[bytes] = []
    for type_, offset, term, timestamp_ms, payload in zip(*columns, payloads, strict=True):
        room = limit - len(out_payloads)
        if room <= 0:
            break
        if type_ == _DATA:
            values = [payload] if offset >= from_offset else []
            skip = 0
        else:
            skip = max(0, from_offset - offset)
            values = decode_records(payload, skip, skip + room)
        count = len(values)
        out_offsets += range(offset + skip, offset + skip + count)
        out_terms += [term] * count
        out_timestamps += [timestamp_ms] * count
        out_payloads += values
    return RecordBlock(out_offsets, out_terms, out_timestamps, out_payloads)
