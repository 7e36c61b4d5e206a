"""The segmented log: the Raft log and the record log in one (DESIGN §3).

`Log` appends batches (one write + one fsync), reads by Raft index or record offset
(O(log n): bisection over segments, then inside the segment index), truncates a
suffix, drops a prefix, resets for a snapshot and applies retention, all crash-safe
(docs/log-format.md). It may not read clocks or do I/O except through FileSystem.
"""

from __future__ import annotations

import bisect
import errno
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .batch import EncodedBatch, encode_batch
from .config import LogConfig
from .entry import Entry, EntryType, RecordBlock, decode_records, make_entry
from .errors import (
    FsyncFailed,
    IndexCompacted,
    IndexOutOfRange,
    LogClosed,
    LogError,
    LogFull,
    NotContiguous,
    OffsetOutOfRange,
    OffsetTruncated,
)
from .fs import FileSystem
from .recovery import open_segments
from .segment import Segment
from .store import FRAME_HEADER_BYTES, SegmentHeader

_DATA = int(EntryType.DATA)


@dataclass(frozen=True, slots=True)
class LogBase:
    """The entry just before first_index: what a snapshot of the dropped prefix covers."""

    index: int
    term: int
    next_offset: int


@contextmanager
def _disk(path: str, log: Log) -> Iterator[None]:
    """ENOSPC becomes LogFull; any other I/O error is fatal (the log stops writing)."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise LogFull(path) from error
        log.failure = FsyncFailed(path, f"{error.strerror or error}")
        raise log.failure from error


class Log:
    """A segmented log over a FileSystem. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        fs: FileSystem,
        directory: str,
        config: LogConfig,
        segments: list[Segment],
        generation: int,
    ) -> None:
        assert segments, "a log always has an active segment"
        self.fs = fs
        self.directory = directory
        self.config = config
        self.failure: LogError | None = None
        self._segments = segments
        self._generation = generation
        self._closed = False

    @classmethod
    def open(cls, fs: FileSystem, directory: str, config: LogConfig) -> Log:
        """Open (creating if missing) and recover the log in `directory`."""
        segments, generation = open_segments(fs, directory)
        if not segments:
            segments = [Segment.create(fs, directory, SegmentHeader(1, 0, 0, generation))]
        for segment in segments[:-1]:
            if not segment.cache_trusted:
                segment.write_index_cache()
        return cls(fs, directory, config, segments, generation)

    # -- shape -------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        return self._segments[0].base_index

    @property
    def last_index(self) -> int:
        return self._segments[-1].last_index

    @property
    def base(self) -> LogBase:
        header = self._segments[0].header
        return LogBase(header.base_index - 1, header.prev_term, header.base_offset)

    @property
    def next_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def first_offset(self) -> int:
        return self._segments[0].header.base_offset

    @property
    def last_term(self) -> int:
        return self._segments[-1].last_term

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def active_segment_bytes(self) -> int:
        """The size of the segment appends go to (all of it durable between calls)."""
        return self._segments[-1].size

    @property
    def segment_paths(self) -> list[str]:
        return [s.path for s in self._segments]

    def config_indices(self) -> list[int]:
        return [i for s in self._segments for i in s.index.config_indices]

    # -- writing -----------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._closed:
            raise LogClosed()
        if self.failure is not None:
            raise self.failure

    def append(self, entries: Sequence[Entry] | EncodedBatch) -> None:
        """Append a contiguous batch durably: one write and one fsync.

        `entries` may be a batch encoded beforehand (encode_batch on the leader, which
        ships the same bytes; decode_batch on a follower): it is then written as is."""
        self._check_writable()
        if not len(entries):
            return
        batch = entries if isinstance(entries, EncodedBatch) else encode_batch(entries)
        self._check_continues(batch)
        active = self._segments[-1]
        if active.size >= self.config.segment_bytes_max and len(active.index):
            active = self._roll()
        self._write(active, batch.data)
        active.append(batch)

    def _check_continues(self, batch: EncodedBatch) -> None:
        """The batch is contiguous inside; check only the seam with the log."""
        if batch.first_index != self.last_index + 1:
            raise NotContiguous(
                f"entry index {batch.first_index} does not follow {self.last_index}"
            )
        if batch.terms[0] < self.last_term:
            raise NotContiguous(
                f"entry term {batch.terms[0]} is below the previous {self.last_term}"
            )
        if batch.offsets[0] != self.next_offset:
            raise NotContiguous(
                f"entry {batch.first_index} has offset {batch.offsets[0]}, not {self.next_offset}"
            )

    def _write(self, active: Segment, data: bytes) -> None:
        # Plain try blocks, not _disk: this runs once per batch and they cost nothing.
        before = active.size
        try:
            active.store.append(data)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                self.failure = FsyncFailed(active.path, f"write failed: {error}")
                raise self.failure from error
            # Undo the partial write so nothing half-written is ever visible.
            with _disk(active.path, self):
                active.store.truncate(before)
                active.store.sync()
            raise LogFull(active.path) from error
        try:
            active.store.sync()
        except OSError as error:  # ENOSPC included: a failed fsync is never retried
            self.failure = FsyncFailed(active.path, f"{error.strerror or error}")
            raise self.failure from error

    def _roll(self) -> Segment:
        active = self._segments[-1]
        active.write_index_cache()
        header = SegmentHeader(
            active.last_index + 1, active.next_offset, active.last_term, self._generation
        )
        with _disk(active.path, self):
            segment = Segment.create(self.fs, self.directory, header)
        self._segments.append(segment)
        return segment

    def truncate_suffix(self, index: int) -> None:
        """Drop entries >= index (a Raft conflict), durably; index > last_index is a no-op."""
        self._check_writable()
        if index > self.last_index:
            return
        if index < self.first_index:
            raise IndexCompacted(index, self.first_index)
        with _disk(self.directory, self):
            # Newest first, so a crash part-way leaves a contiguous, longer prefix.
            while len(self._segments) > 1 and self._segments[-1].base_index >= index:
                self._segments.pop().remove()
                self.fs.sync_dir(self.directory)
            active = self._segments[-1]
            active.truncate_entries(index - active.base_index)

    def drop_prefix(self, index: int) -> None:
        """Remove the whole segments whose entries are all below `index` (never the last)."""
        self._check_writable()
        with _disk(self.directory, self):
            while len(self._segments) > 1 and self._segments[1].base_index <= index:
                self._remove_first()

    def _remove_first(self) -> str:
        # Oldest first, each removal durable before the next: the survivors always chain.
        segment = self._segments.pop(0)
        segment.remove()
        self.fs.sync_dir(self.directory)
        return segment.path

    def reset(self, index: int, term: int, next_offset: int) -> None:
        """Drop everything; the log restarts empty after (index, term) (snapshot install).

        The commit point is the rename of the new segment of a higher generation;
        recovery removes older generations, so a crash leaves the old log or the new one.
        """
        self._check_writable()
        assert index >= 0 and term >= 0 and next_offset >= 0, "reset needs a valid base"
        new_generation = self._generation + 1
        with _disk(self.directory, self):
            for segment in self._segments:
                segment.forget_index_cache()
            header = SegmentHeader(index + 1, next_offset, term, new_generation)
            fresh = Segment.create(self.fs, self.directory, header)
            for segment in self._segments:
                if segment.path == fresh.path:
                    segment.store.close()  # replaced by the rename already
                else:
                    segment.remove()
            self.fs.sync_dir(self.directory)
        self._segments = [fresh]
        self._generation = new_generation

    def apply_retention(self, upto_index: int, now_ms: int) -> list[str]:
        """Drop the oldest whole segments that end at or below `upto_index` while the log
        is over retention_bytes_max or their newest entry is older than
        retention_age_ms_max. The active segment is never dropped. Returns removed paths."""
        self._check_writable()
        removed: list[str] = []
        with _disk(self.directory, self):
            while len(self._segments) > 1 and self._segments[0].last_index <= upto_index:
                if not self._over_retention(self._segments[0], now_ms):
                    break
                removed.append(self._remove_first())
        return removed

    def _over_retention(self, oldest: Segment, now_ms: int) -> bool:
        bytes_max, age_ms_max = self.config.retention_bytes_max, self.config.retention_age_ms_max
        if bytes_max is not None and self.size_bytes > bytes_max:
            return True
        newest_ms = oldest.timestamp_ms_max
        return age_ms_max is not None and newest_ms is not None and now_ms - newest_ms > age_ms_max

    def close(self) -> None:
        """Persist the active segment's index cache and release the files."""
        if self._closed:
            return
        self._closed = True
        if self.failure is None:
            self._segments[-1].write_index_cache()
        for segment in self._segments:
            segment.store.close()

    # -- reading by Raft index ------------------------------------------------------------

    def _check_index(self, index: int) -> None:
        if self._closed:
            raise LogClosed()
        if index < self.first_index:
            raise IndexCompacted(index, self.first_index)
        if index > self.last_index:
            raise IndexOutOfRange(index, self.last_index)

    def _segment_of(self, index: int) -> Segment:
        k = bisect.bisect_right(self._segments, index, key=lambda s: s.base_index) - 1
        return self._segments[k]

    def entry(self, index: int) -> Entry:
        self._check_index(index)
        segment = self._segment_of(index)
        local = index - segment.base_index
        return segment.read(local, local + 1)[0]

    def term_at(self, index: int) -> int:
        """The term of `index`, for base.index <= index <= last_index."""
        if index == self.base.index:
            return self.base.term
        self._check_index(index)
        segment = self._segment_of(index)
        return segment.index.terms[index - segment.base_index]

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi), stopping before max_bytes of payload is passed (at least one)."""
        if lo >= hi:
            return []
        self._check_index(lo)
        self._check_index(hi - 1)
        result: list[Entry] = []
        budget = max_bytes
        while lo < hi:
            segment = self._segment_of(lo)
            first = lo - segment.base_index
            wanted = min(hi - segment.base_index, len(segment.index))
            last, budget = self._within_budget(segment, first, wanted, budget, not result)
            if last > first:
                result += segment.read(first, last)
            if last < wanted:
                break  # the byte budget ran out
            lo = segment.base_index + last
        return result

    @staticmethod
    def _within_budget(
        segment: Segment, first: int, last: int, budget: int | None, need_one: bool
    ) -> tuple[int, int | None]:
        if budget is None:
            return last, None
        sizes = segment.index.frame_sizes
        end = first
        while end < last:
            payload_bytes = sizes[end] - FRAME_HEADER_BYTES
            if payload_bytes > budget and not (need_one and end == first):
                break
            budget -= payload_bytes
            end += 1
        return end, max(budget, 0)

    # -- reading by record offset ------------------------------------------------------------

    def _check_offset(self, offset: int) -> None:
        if self._closed:
            raise LogClosed()
        if offset < self.first_offset:
            raise OffsetTruncated(offset, self.first_offset)
        if offset >= self.next_offset:
            raise OffsetOutOfRange(offset, self.next_offset)

    def _segment_of_offset(self, offset: int) -> Segment:
        # The last segment whose base offset is <= offset holds record `offset`: a segment
        # of control entries only shares its base offset with the one after it.
        key = lambda s: s.header.base_offset  # noqa: E731
        k = bisect.bisect_right(self._segments, offset, key=key) - 1
        return self._segments[k]

    def read_offset(self, offset: int) -> Entry:
        """Record `offset` as a DATA entry: a record of a RECORDS entry comes as one with
        that entry's index, term and timestamp."""
        self._check_offset(offset)
        segment = self._segment_of_offset(offset)
        local = segment.index.find_offset(offset)
        assert local is not None, f"offset {offset} is in range but not in {segment.path}"
        return _records_of(segment.read(local, local + 1)[0], offset, 1)[0]

    def read_from_offset(self, offset: int, max_records: int, max_index: int) -> list[Entry]:
        """Records from `offset` on, in order, at most max_records, only from entries with
        index <= max_index, each as a DATA entry (see read_offset). Empty at the end of the
        log."""
        if offset == self.next_offset and not self._closed:
            return []
        self._check_offset(offset)
        segment = self._segment_of_offset(offset)
        index = segment.base_index + segment.index.first_at_or_after_offset(offset)
        hi = min(max_index, self.last_index) + 1
        records: list[Entry] = []
        while index < hi and len(records) < max_records:
            segment = self._segment_of(index)
            stop = self._stop_for(segment, index - segment.base_index, offset + max_records - 1)
            chunk = self.entries(index, min(hi, segment.base_index + stop))
            for entry in chunk:
                records += _records_of(entry, offset, max_records - len(records))
            index = chunk[-1].index + 1
        return records

    @staticmethod
    def _stop_for(segment: Segment, first: int, last_offset: int) -> int:
        """Where a read from position `first` of `segment` may stop (exclusive): after the
        entry holding record `last_offset` (RECORDS entries hold many, so reading
        max_records entries would read far too much), and after `first` at least (control
        entries before it may share the offsets)."""
        return max(first, segment.index.first_at_or_after_offset(last_offset)) + 1

    def read_records(self, offset: int, max_records: int, max_index: int) -> RecordBlock:
        """What read_from_offset returns, as columns (no Entry per record): the consumers'
        read path. Empty at the end of the log."""
        if offset == self.next_offset and not self._closed:
            return _EMPTY_BLOCK
        self._check_offset(offset)
        segment = self._segment_of_offset(offset)
        index = segment.base_index + segment.index.first_at_or_after_offset(offset)
        hi = min(max_index, self.last_index) + 1
        blocks: list[RecordBlock] = []
        count = 0
        while index < hi and count < max_records:
            segment = self._segment_of(index)
            first = index - segment.base_index
            stop = self._stop_for(segment, first, offset + max_records - 1)
            last = min(hi - segment.base_index, len(segment.index), stop)
            block = segment.read_records(first, last, offset, max_records - count)
            if len(block):
                blocks.append(block)
                count += len(block)
            index = segment.base_index + last
        if len(blocks) == 1:
            return blocks[0]
        return RecordBlock(
            [o for b in blocks for o in b.offsets],
            [t for b in blocks for t in b.terms],
            [t for b in blocks for t in b.timestamps_ms],
            [p for b in blocks for p in b.payloads],
        )


def _records_of(entry: Entry, from_offset: int, limit: int) -> list[Entry]:
    """The records of `entry` at `from_offset` or later, at most `limit`, as DATA entries."""
    if entry.type is EntryType.DATA:
        return [entry] if entry.offset >= from_offset and limit > 0 else []
    if entry.type is not EntryType.RECORDS:
        return []
    skip = max(0, from_offset - entry.offset)
    values = decode_records(entry.payload, skip, skip + limit)
    index, term, timestamp_ms = entry.index, entry.term, entry.timestamp_ms
    return [
        make_entry(index, term, EntryType.DATA, entry.offset + skip + k, timestamp_ms, value)
        for k, value in enumerate(values)
    ]


_EMPTY_BLOCK = RecordBlock([], [], [], [])
